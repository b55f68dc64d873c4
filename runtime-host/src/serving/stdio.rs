//! The process's stdout and stderr for guest lines, written by a thread of their own.
//!
//! A write to a pipe blocks once its reader stops reading (a stalled log shipper, a paused
//! `kubectl logs`). Written from the async runtime's threads, that froze every request and
//! the probes with it. Here a line is appended to a bounded buffer under a short lock, and
//! one writer thread per stream empties the buffer in as few writes as it can: a stalled
//! reader now costs lines (counted and reported on the host's log), never requests.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Most bytes waiting for a stream's writer; a line that does not fit is dropped and counted.
/// A few thousand requests' lines: enough to ride out a slow reader, bounded if it stops.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// How long [`drain`] waits for the writers at exit before giving up on a stalled reader.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One output stream's buffer, shared by the writers of lines and the stream's thread.
pub struct Printer {
    state: Mutex<Pending>,
    /// Signalled when bytes arrive (for the thread) and when the buffer empties (for drain).
    changed: Condvar,
    name: &'static str,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the thread last reported.
    dropped: u64,
    /// The thread is writing a batch it took out of `bytes`.
    writing: bool,
}

impl Printer {
    /// Appends one line (ending in `\n`), or drops it if the buffer is full. Never blocks on
    /// the stream.
    pub fn line(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.bytes.len() + line.len() > MAX_PENDING_BYTES {
            pending.dropped += 1;
            let first = pending.dropped == 1;
            drop(pending);
            // Said once per episode here (the thread may be stuck in a write), with the
            // count once the stream moves again. The host's log does not block (main.rs).
            if first {
                tracing::warn!(
                    stream = self.name,
                    max_pending_bytes = MAX_PENDING_BYTES,
                    "dropping guest lines: the reader of this stream is not keeping up"
                );
            }
            return;
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        // The thread waits only on an empty buffer; later lines join the batch it takes.
        if was_empty {
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream's thread: takes everything pending, writes it in one go, repeats.
    fn run(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            let dropped = {
                let mut pending = self.lock();
                pending.writing = false;
                if pending.bytes.is_empty() {
                    self.changed.notify_all();
                }
                while pending.bytes.is_empty() && pending.dropped == 0 {
                    pending = self
                        .changed
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                std::mem::swap(&mut pending.bytes, &mut batch);
                pending.writing = true;
                std::mem::take(&mut pending.dropped)
            };
            if dropped > 0 {
                tracing::warn!(
                    stream = self.name,
                    dropped_lines = dropped,
                    max_pending_bytes = MAX_PENDING_BYTES,
                    "guest lines were dropped while the reader of this stream was not keeping up"
                );
            }
            // A closed stream must not fail the guests: its lines are gone either way.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
    }

    /// Waits until everything appended so far is written, at most until `deadline`.
    /// False if the deadline came first.
    fn wait_written(&self, deadline: Instant) -> bool {
        let mut pending = self.lock();
        while !pending.bytes.is_empty() || pending.writing {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            pending = self
                .changed
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn start(name: &'static str, out: impl Write + Send + 'static) -> &'static Printer {
        let printer: &'static Printer = Box::leak(Box::new(Printer {
            state: Mutex::new(Pending::default()),
            changed: Condvar::new(),
            name,
        }));
        std::thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || printer.run(out))
            .expect("spawning an output writer thread");
        printer
    }
}

static STDOUT: OnceLock<&'static Printer> = OnceLock::new();
static STDERR: OnceLock<&'static Printer> = OnceLock::new();

/// The process's stdout, for guest lines (its thread starts on first use).
pub fn stdout() -> &'static Printer {
    STDOUT.get_or_init(|| Printer::start("stdout", std::io::stdout()))
}

/// The process's stderr, for guest lines (its thread starts on first use).
pub fn stderr() -> &'static Printer {
    STDERR.get_or_init(|| Printer::start("stderr", std::io::stderr()))
}

/// Waits, at most [`DRAIN_TIMEOUT`], until the lines appended so far are written: at exit,
/// so that the last requests' lines are not lost, nor the exit held by a stalled reader.
pub fn drain() {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for printer in [STDOUT.get(), STDERR.get()].into_iter().flatten() {
        if !printer.wait_written(deadline) {
            tracing::warn!(
                stream = printer.name,
                "exiting with guest lines unwritten: the reader of this stream stalled"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, mpsc};

    /// A stream whose writes block until the test lets them through.
    struct Gate {
        written: Arc<Mutex<Vec<u8>>>,
        open: mpsc::Receiver<()>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.open.recv();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stream_costs_lines_not_writers_and_later_lines_still_come_out() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = mpsc::channel();
        let printer = Printer::start(
            "test",
            Gate {
                written: written.clone(),
                open: gate,
            },
        );
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<_>>();
        let sent = 2 * MAX_PENDING_BYTES / line.len();
        // Far more than the buffer holds: every call returns although nothing is written.
        for _ in 0..sent {
            printer.line(&line);
        }
        assert!(!printer.wait_written(Instant::now() + Duration::from_millis(50)));
        // The reader comes back: what was kept comes out whole, then the lines after.
        drop(open);
        assert!(printer.wait_written(Instant::now() + Duration::from_secs(10)));
        printer.line(b"after\n");
        assert!(printer.wait_written(Instant::now() + Duration::from_secs(10)));
        let written = written.lock().unwrap();
        let kept = written
            .strip_suffix(b"after\n")
            .expect("the last line is last");
        assert!(
            kept.chunks(line.len()).all(|l| l == line),
            "only whole lines"
        );
        let kept_lines = kept.len() / line.len();
        assert!(kept_lines < sent, "some were dropped");
        assert!(
            kept_lines >= MAX_PENDING_BYTES / line.len(),
            "a full buffer was kept"
        );
    }
}
