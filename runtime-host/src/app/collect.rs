//! `runtime-host collect FILE...`: for apps that run under Spin. Follows the log files Spin
//! writes (`.spin/logs/<component>_stdout.txt`), reads the middleware's metric events, span
//! events and access lines from them, and serves the same `/metrics`, probes and OTLP export
//! as serving mode.
//!
//! Files are polled (no inotify dependency): each poll reads what was appended since the last
//! one. A file that got shorter was truncated and is read again from its start; a path that
//! now names another file (rotation: renamed away, new file created) is finished from the old
//! handle and then followed from the new file's start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::dashboard::auth::AdminHosts;
use crate::admin::{self, AdminContext};
use crate::app::settings;
use crate::cli::{Args, CollectArgs};
use crate::health::Health;
use telemetry::lines::LineSplitter;
use telemetry::pipeline::Pipeline;
/// Bytes read per file per poll at most, so one huge file cannot starve the others.
const MAX_READ_PER_POLL: u64 = 4 * 1024 * 1024;

/// Readiness check: every file is being followed.
const CHECK_FILES: &str = "files";

/// Follows one file.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// Device and inode of `file`, to notice rotation.
    id: (u64, u64),
    offset: u64,
    lines: LineSplitter,
}

impl Follower {
    /// Follows `path` from its current end (`from_start`: from its beginning). A missing file
    /// is waited for and then read from its start.
    pub fn new(path: &Path, from_start: bool) -> Self {
        let mut f = Follower {
            path: path.to_owned(),
            file: None,
            id: (0, 0),
            offset: 0,
            lines: LineSplitter::default(),
        };
        if let Ok(file) = File::open(path)
            && let Ok(meta) = file.metadata()
        {
            f.id = (meta.dev(), meta.ino());
            f.offset = if from_start { 0 } else { meta.len() };
            f.file = Some(file);
        }
        f
    }

    /// Whether the file exists and is followed.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Reads what was appended and passes every complete line (with its `\n`) to `line`.
    pub fn poll(&mut self, line: &mut dyn FnMut(&[u8])) {
        let current = std::fs::metadata(&self.path).ok();
        let rotated = match (&current, &self.file) {
            (Some(meta), Some(_)) => (meta.dev(), meta.ino()) != self.id,
            (Some(_), None) => true,
            _ => false,
        };
        if rotated {
            // Finish the old file (lines written before the rename), then switch.
            self.read_new(line);
            self.lines.flush(line);
            self.file = None;
            if let Ok(file) = File::open(&self.path)
                && let Ok(meta) = file.metadata()
            {
                self.id = (meta.dev(), meta.ino());
                self.offset = 0;
                self.file = Some(file);
            }
        }
        if let Some(file) = &self.file
            && let Ok(meta) = file.metadata()
            && meta.len() < self.offset
        {
            // Truncated (copytruncate rotation, or the app restarted and rewrote it).
            self.offset = 0;
            self.lines = LineSplitter::default();
        }
        self.read_new(line);
    }

    fn read_new(&mut self, line: &mut dyn FnMut(&[u8])) {
        let Some(file) = &mut self.file else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = file.take(MAX_READ_PER_POLL).read_to_end(&mut buf) else {
            return;
        };
        self.offset += n as u64;
        self.lines.push(&buf, line);
    }
}

/// Runs collect mode until `shutdown` resolves.
pub async fn run(
    args: &Args,
    collect: &CollectArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // Collect mode has no admin page, so no request list.
    let pipeline = Pipeline::start(settings::pipeline(args, 0, &[]))?;
    let admin_listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--admin-addr)", args.admin_addr))?;
    let admin_addr = admin_listener.local_addr()?;
    // The same token as in serve mode: /metrics is not open because the lines come from files.
    let token = settings::admin_token(args, admin_addr)?;
    let health = Arc::new(Health::new(&[CHECK_FILES]));
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        AdminContext {
            token,
            hosts: AdminHosts::new(&args.admin_host),
            ..AdminContext::new(health.clone(), pipeline.metrics().clone())
        },
        async move {
            let mut rx = admin_stop_rx;
            let _ = rx.wait_for(|stop| *stop).await;
        },
    ));
    let mut followers: Vec<Follower> = collect
        .files
        .iter()
        .map(|p| Follower::new(p, collect.from_start))
        .collect();
    let files: Vec<String> = collect
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(
        admin_addr = %admin_addr,
        files = ?files,
        "runtime-host collecting"
    );
    health.set_started();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(collect.poll_interval.0);
    loop {
        for f in &mut followers {
            f.poll(&mut |line| pipeline.collect_line(line));
        }
        health.set_check(CHECK_FILES, followers.iter().all(Follower::is_open));
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
    }
    health.set_draining();
    // Lines written up to the signal still count.
    for f in &mut followers {
        f.poll(&mut |line| pipeline.collect_line(line));
    }
    pipeline
        .shutdown(tokio::time::Instant::now() + args.shutdown_grace)
        .await;
    let _ = admin_stop_tx.send(true);
    let _ = admin_task.await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.poll(&mut |l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_truncation_and_rotation() {
        let dir = std::env::temp_dir().join(format!("collect-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app_stdout.txt");
        let _ = std::fs::remove_file(&path);
        append(&path, "old line\n");
        let mut f = Follower::new(&path, false);
        assert!(lines(&mut f).is_empty(), "starts at the end");
        append(&path, "a\nb");
        assert_eq!(lines(&mut f), ["a\n"]);
        append(&path, "c\n");
        assert_eq!(lines(&mut f), ["bc\n"]);
        // Truncation: read again from the start.
        std::fs::write(&path, "t\n").unwrap();
        assert_eq!(lines(&mut f), ["t\n"]);
        // Rotation: the old file gets a last line after the rename, a new file appears.
        let rotated = dir.join("app_stdout.txt.1");
        std::fs::rename(&path, &rotated).unwrap();
        append(&rotated, "last of old\n");
        append(&path, "first of new\n");
        assert_eq!(lines(&mut f), ["last of old\n", "first of new\n"]);
        append(&path, "more\n");
        assert_eq!(lines(&mut f), ["more\n"]);
        // A file that does not exist yet is read from its start once it appears.
        let later = dir.join("later.txt");
        let _ = std::fs::remove_file(&later);
        let mut g = Follower::new(&later, false);
        assert!(!g.is_open());
        assert!(lines(&mut g).is_empty());
        append(&later, "x\n");
        assert_eq!(lines(&mut g), ["x\n"]);
        assert!(g.is_open());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
