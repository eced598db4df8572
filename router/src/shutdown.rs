//! A shutdown signal passed to each long-running part; never global.

use tokio::sync::watch;

/// Fires once; every clone sees it.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side: [`Trigger::fire`] starts the shutdown.
pub struct Trigger(watch::Sender<bool>);

/// A connected trigger and signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tells every [`Shutdown`] to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been triggered (or the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Whether shutdown has been triggered.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }
}
