//! A deadline on the first bytes a connection receives.
//!
//! hyper's HTTP/2 server has no header deadline: it waits for the client's preface for
//! as long as the client likes. Over cleartext the accept loop peeks for the preface
//! itself; over TLS the bytes arrive encrypted and cannot be peeked, so the stream is
//! wrapped instead, and the first read fails once the deadline passes with nothing read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

#[derive(Debug)]
pub(super) struct FirstReadDeadline<T> {
    inner: T,
    /// `None` once something has been read.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> FirstReadDeadline<T> {
    pub(super) fn new(inner: T, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstReadDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = this.deadline.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                io::Error::new(io::ErrorKind::TimedOut, "nothing received in time"),
            )),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstReadDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
    async fn the_first_read_must_come_in_time_and_later_ones_need_not() {
        let (_silent, server) = tokio::io::duplex(64);
        let mut wrapped = FirstReadDeadline::new(server, Duration::from_millis(100));
        let err = wrapped.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut wrapped = FirstReadDeadline::new(server, Duration::from_millis(100));
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
        let mut wrapped = FirstReadDeadline::new(server, Duration::from_secs(60));
        drop(client);
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 0, "end of stream");
    }
}
