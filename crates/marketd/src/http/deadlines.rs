//! Deadlines on a connection's reads, for what hyper does not bound itself.
//!
//! - The first bytes: hyper's HTTP/2 server waits for the client's preface for as long
//!   as the client likes. Over cleartext the accept loop peeks for the preface itself;
//!   over TLS the bytes arrive encrypted and cannot be peeked, so the first read here
//!   fails once its deadline passes with nothing read.
//! - Idleness: hyper closes an idle HTTP/1.1 connection when its header deadline passes,
//!   but an HTTP/2 connection that has sent its preface may then stay open and silent
//!   for ever, holding a task, its buffers and a connection slot. The pending read fails
//!   once nothing has moved in either direction for the idle limit. A live event stream
//!   writes a heartbeat every 15 s and a request in progress has a handler deadline, so
//!   the limit (above both) only ever closes connections that nobody uses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub(super) struct Deadlines<T> {
    inner: T,
    /// Until something has been read; `None` without one, or once something has.
    first_read: Option<Pin<Box<Sleep>>>,
    /// `None` for connections the deadline does not apply to (HTTP/1.1).
    limit: Option<Duration>,
    last_activity: Instant,
    /// Fires at `last_activity + limit` as it was when armed; moved on when it fires early.
    timer: Pin<Box<Sleep>>,
}

impl<T> Deadlines<T> {
    pub(super) fn new(inner: T, limit: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            first_read: None,
            limit,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + limit.unwrap_or_default())),
        }
    }

    /// Fails the first read unless something arrives within `within`.
    pub(super) fn with_first_read_within(mut self, within: Duration) -> Self {
        self.first_read = Some(Box::pin(tokio::time::sleep(within)));
        self
    }

    /// Only the time is noted on each transfer; the timer is moved when it fires, so
    /// busy connections do not touch the timer wheel per read or write.
    fn note_activity(&mut self) {
        if self.limit.is_some() {
            self.last_activity = Instant::now();
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_activity + limit;
            if due <= Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.first_read = None;
                    this.note_activity();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending
                if this
                    .first_read
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready()) =>
            {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing received in time",
                )))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle past its limit",
            ))),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.note_activity();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.note_activity();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn traffic_in_either_direction_keeps_a_connection_open() {
        let limit = Some(Duration::from_millis(200));
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wrapped = Deadlines::new(server, limit);
        let mut buf = [0; 8];
        // Reads, then writes, each well inside the limit, for three times the limit.
        for round in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if round % 2 == 0 {
                client.write_all(b"x").await.unwrap();
                assert_eq!(wrapped.read(&mut buf).await.unwrap(), 1);
            } else {
                wrapped.write_all(b"y").await.unwrap();
                assert_eq!(client.read(&mut buf).await.unwrap(), 1);
            }
        }
        // Then nothing: the pending read fails once the limit has passed.
        let started = Instant::now();
        let err = wrapped.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn without_a_limit_a_read_waits_for_data() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut wrapped = Deadlines::new(server, None);
        let mut buf = [0; 8];
        let (read, ()) = tokio::join!(wrapped.read(&mut buf), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b"late").await.unwrap();
        });
        assert_eq!(read.unwrap(), 4);
    }

    #[tokio::test]
    async fn the_first_read_must_come_in_time_and_later_ones_need_not() {
        let (_silent, server) = tokio::io::duplex(64);
        let mut wrapped =
            Deadlines::new(server, None).with_first_read_within(Duration::from_millis(100));
        let err = wrapped.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut wrapped =
            Deadlines::new(server, None).with_first_read_within(Duration::from_millis(100));
        client.write_all(b"PRI").await.unwrap();
        let mut buf = [0; 8];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 3);
        // A read still waiting well past the deadline is an idle connection, not a
        // silent opening, and is left to the protocol.
        let (read, ()) = tokio::join!(wrapped.read(&mut buf), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b" *").await.unwrap();
        });
        assert_eq!(read.unwrap(), 2);

        let (client, server) = tokio::io::duplex(64);
        let mut wrapped =
            Deadlines::new(server, None).with_first_read_within(Duration::from_secs(60));
        drop(client);
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 0, "end of stream");
    }
}
