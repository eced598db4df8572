//! A real PostgreSQL server for one test: `initdb` into a temporary directory, started on a
//! free loopback port, stopped (and removed) when dropped. PostgreSQL refuses to run as
//! root, so as root the server runs as the `postgres` user (Debian's package creates it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

/// A running PostgreSQL cluster with a superuser `hookyard` and trust authentication.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    databases: AtomicUsize,
}

impl PgCluster {
    /// Initialises and starts a cluster.
    pub fn start() -> Result<PgCluster> {
        PgCluster::start_inner(false, &[])
    }

    /// Like [`PgCluster::start`], with extra server settings (`-c name=value`).
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Result<PgCluster> {
        PgCluster::start_inner(false, settings)
    }

    /// Stops every process of the server (`SIGSTOP`) without closing a socket: to a client
    /// it looks like a network partition, where requests hang rather than fail.
    pub fn freeze(&self) {
        assert!(self.signal("-STOP"), "cannot stop the server");
    }

    /// Lets a frozen server run again (`SIGCONT`).
    pub fn thaw(&self) {
        assert!(self.signal("-CONT"), "cannot continue the server");
    }

    /// The server's main process, from its `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// Sends `signal` to the postmaster and its children; whether the postmaster got it.
    fn signal(&self, signal: &str) -> bool {
        let Some(pid) = self.postmaster_pid().map(|p| p.to_string()) else {
            return false;
        };
        let children = std::process::Command::new("pgrep")
            .args(["-P", &pid])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let kill = |pid: &str| {
            std::process::Command::new("kill")
                .args([signal, pid])
                .status()
                .is_ok_and(|s| s.success())
        };
        let sent = kill(&pid);
        // A backend may exit between the listing and the signal; that one needs none.
        for child in String::from_utf8_lossy(&children).split_whitespace() {
            kill(child);
        }
        sent
    }

    /// Like [`PgCluster::start`], also accepting TLS with a certificate for `127.0.0.1` and
    /// `localhost` signed by a CA made for this cluster ([`PgCluster::ca_file`]).
    pub fn start_with_tls() -> Result<PgCluster> {
        PgCluster::start_inner(true, &[])
    }

    /// The PEM file of the CA that signed the server's certificate (TLS clusters).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(tls: bool, settings: &[(&str, &str)]) -> Result<PgCluster> {
        let bin = pg_bin()?;
        let dir = tempfile::tempdir().context("tempdir")?;
        let as_root = is_root();
        if as_root {
            let (uid, gid) = postgres_user()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("chown the cluster directory to postgres")?;
        }
        let data = dir.path().join("data");
        run(
            &bin,
            "initdb",
            as_root,
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "hookyard",
                "-A",
                "trust",
                "--no-sync",
            ],
        )?;
        let port = free_port()?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.path().display()
        );
        for (name, value) in settings {
            options += &format!(" -c {name}={value}");
        }
        if tls {
            let (cert, key) = write_certificates(dir.path(), as_root)?;
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        run(
            &bin,
            "pg_ctl",
            as_root,
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &dir.path().join("server.log").to_string_lossy(),
                "-w",
                "start",
            ],
        )?;
        Ok(PgCluster {
            dir,
            bin,
            port,
            databases: AtomicUsize::new(0),
        })
    }

    /// The URL of a database in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://hookyard@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn new_database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        self.url(&name)
    }

    /// Runs SQL in `url`'s database and returns the first column of every row as text.
    pub async fn query(&self, url: &str, sql: &str) -> Vec<String> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .expect("query")
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // A test that failed while the server was frozen must not leave it stopped.
        self.signal("-CONT");
        let data = self.dir.path().join("data");
        let _ = run(
            &self.bin,
            "pg_ctl",
            is_root(),
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, else Debian's versioned one.
fn pg_bin() -> Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists())
        .context(
            "PostgreSQL is not installed (no initdb): scripts/test.sh installs Debian's postgresql",
        )
}

fn run(bin: &Path, tool: &str, as_postgres: bool, args: &[&str]) -> Result<()> {
    let program = bin.join(tool);
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("no postgres user: install Debian's postgresql package")
    };
    Ok((id("-u")?, id("-g")?))
}

/// A CA (`ca.pem`) and a server certificate and key it signed, for `127.0.0.1` and
/// `localhost`; the key readable only by the server's user, as PostgreSQL insists.
fn write_certificates(dir: &Path, as_root: bool) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hookyard test CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    if as_root {
        let (uid, gid) = postgres_user()?;
        for f in [&cert_file, &key_file] {
            std::os::unix::fs::chown(f, Some(uid), Some(gid))?;
        }
    }
    Ok((cert_file, key_file))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
