//! WASI as plugins see it: a context with nothing granted (no files, environment, arguments
//! or sockets; stdin empty; stdout and stderr captured by a [`Console`]), linked in one of
//! two flavours.
//!
//! - [`add_async`]: wasmtime-wasi's async bindings, for plugins that run on fibers.
//! - [`add_sync`]: only the interfaces a plugin can use without ever waiting (clocks,
//!   random, cli, stdio streams, poll). wasmtime-wasi's own sync bindings block on a Tokio
//!   runtime for stream calls, which is not allowed on the router's worker threads; here a
//!   stream call is polled once instead. With nothing granted nothing can be pending (stdin
//!   is closed, stdout and stderr take every write at once), and if something ever were,
//!   the plugin traps with a clear message rather than blocking a thread. Filesystem and
//!   socket imports are left out, so a plugin that imports them takes the async path.

use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynPollable, StreamError, StreamResult};

use super::host::HostState;

/// Adds WASI for plugins that run on fibers.
pub fn add_async(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

/// Adds the WASI interfaces that never wait, all with sync host functions.
pub fn add_sync(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    let l = linker;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
    random::random::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    io::error::add_to_linker::<_, Table>(l, |t| t.ctx().table)?;
    poll::add_to_linker::<_, NoWait>(l, |t| NoWaitIo(t.ctx().table))?;
    streams::add_to_linker::<_, NoWait>(l, |t| NoWaitIo(t.ctx().table))?;
    Ok(())
}

struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

struct NoWait;

impl HasData for NoWait {
    type Data<'a> = NoWaitIo<'a>;
}

/// The resource table, serving the sync stream and poll interfaces without waiting.
struct NoWaitIo<'a>(&'a mut ResourceTable);

const WOULD_WAIT: &str = "a plugin's WASI stream call would have to wait, and plugins cannot \
                          block (only stdout and stderr are available, and they never wait)";

/// Polls `f` once: what it yields if it is ready, a trap if it would wait.
fn now<T>(f: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(wasmtime::Error::msg(WOULD_WAIT)),
    }
}

/// [`now`] for stream calls, whose errors may also be stream errors.
fn stream_now<T>(f: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(StreamError::Trap(wasmtime::Error::msg(WOULD_WAIT))),
    }
}

impl poll::Host for NoWaitIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now(async_poll::Host::poll(self.0, pollables))
    }
}

impl poll::HostPollable for NoWaitIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        now(async_poll::HostPollable::ready(self.0, pollable))
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now(async_poll::HostPollable::block(self.0, pollable))
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for NoWaitIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

impl streams::HostOutputStream for NoWaitIo<'_> {
    fn drop(&mut self, stream: Resource<streams::OutputStream>) -> wasmtime::Result<()> {
        now(AsyncOutput::drop(self.0, stream))
    }
    fn check_write(&mut self, stream: Resource<streams::OutputStream>) -> StreamResult<u64> {
        AsyncOutput::check_write(self.0, stream)
    }
    fn write(
        &mut self,
        stream: Resource<streams::OutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        AsyncOutput::write(self.0, stream, bytes)
    }
    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<streams::OutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_now(AsyncOutput::blocking_write_and_flush(self.0, stream, bytes))
    }
    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<streams::OutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_now(AsyncOutput::blocking_write_zeroes_and_flush(
            self.0, stream, len,
        ))
    }
    fn subscribe(
        &mut self,
        stream: Resource<streams::OutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOutput::subscribe(self.0, stream)
    }
    fn write_zeroes(
        &mut self,
        stream: Resource<streams::OutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        AsyncOutput::write_zeroes(self.0, stream, len)
    }
    fn flush(&mut self, stream: Resource<streams::OutputStream>) -> StreamResult<()> {
        AsyncOutput::flush(self.0, stream)
    }
    fn blocking_flush(&mut self, stream: Resource<streams::OutputStream>) -> StreamResult<()> {
        stream_now(AsyncOutput::blocking_flush(self.0, stream))
    }
    fn splice(
        &mut self,
        dst: Resource<streams::OutputStream>,
        src: Resource<streams::InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        AsyncOutput::splice(self.0, dst, src, len)
    }
    fn blocking_splice(
        &mut self,
        dst: Resource<streams::OutputStream>,
        src: Resource<streams::InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_now(AsyncOutput::blocking_splice(self.0, dst, src, len))
    }
}

impl streams::HostInputStream for NoWaitIo<'_> {
    fn drop(&mut self, stream: Resource<streams::InputStream>) -> wasmtime::Result<()> {
        now(AsyncInput::drop(self.0, stream))
    }
    fn read(&mut self, stream: Resource<streams::InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncInput::read(self.0, stream, len)
    }
    fn blocking_read(
        &mut self,
        stream: Resource<streams::InputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        stream_now(AsyncInput::blocking_read(self.0, stream, len))
    }
    fn skip(&mut self, stream: Resource<streams::InputStream>, len: u64) -> StreamResult<u64> {
        AsyncInput::skip(self.0, stream, len)
    }
    fn blocking_skip(
        &mut self,
        stream: Resource<streams::InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_now(AsyncInput::blocking_skip(self.0, stream, len))
    }
    fn subscribe(
        &mut self,
        stream: Resource<streams::InputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncInput::subscribe(self.0, stream)
    }
}

/// What a plugin writes to stdout and stderr during one run (both go to the same place),
/// kept up to [`Console::LIMIT`] bytes; the rest is dropped without failing the write. The
/// router logs it, and a trap's message quotes the Rust panic message found in it.
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    /// Most bytes kept per run.
    pub const LIMIT: usize = 8 * 1024;

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut kept) = self.0.lock() {
            let room = Self::LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// The non-empty lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let kept = self.0.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&kept)
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The Rust panic message in `lines`, e.g. `panicked at src/lib.rs:9:5: index out of
    /// bounds`, if the plugin printed one.
    pub fn panic_message(lines: &[String]) -> Option<String> {
        let at = lines.iter().position(|l| l.contains("panicked at "))?;
        let head = &lines[at][lines[at].find("panicked at ")?..];
        let head = head.trim_end_matches(':');
        Some(match lines.get(at + 1) {
            Some(message) if !message.starts_with("note: ") => format!("{head}: {message}"),
            _ => head.to_string(),
        })
    }
}

impl wasmtime_wasi::cli::IsTerminal for Console {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for Console {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for Console {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for Console {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Console {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_panic_message_is_found_in_the_console() {
        let lines: Vec<String> = [
            "thread '<unnamed>' panicked at plugins/x/src/lib.rs:9:5:",
            "index out of bounds: the len is 0 but the index is 3",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            Console::panic_message(&lines).as_deref(),
            Some(
                "panicked at plugins/x/src/lib.rs:9:5: index out of bounds: the len is 0 but the index is 3"
            )
        );
        assert_eq!(Console::panic_message(&["hello".to_string()]), None);
    }

    #[test]
    fn the_console_keeps_a_bounded_prefix_and_never_fails_a_write() {
        use wasmtime_wasi::p2::OutputStream;
        let mut console = Console::default();
        for _ in 0..100 {
            console.write(bytes::Bytes::from(vec![b'x'; 1000])).unwrap();
        }
        console.write(bytes::Bytes::from_static(b"\nlast")).unwrap();
        let lines = console.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), Console::LIMIT);
    }
}
