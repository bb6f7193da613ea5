//! A client-side bound on waiting for PostgreSQL: [`Watched`] wraps a connection's byte stream
//! and fails it when the server owes an answer and has sent nothing for too long.
//!
//! TCP cannot tell a hung server from a slow one: a stopped server's kernel still acknowledges
//! every byte and answers keepalives, and a proxy that stopped forwarding looks the same. So the
//! bound is kept at the protocol level. Every simple query (`Q`) and every extended-protocol
//! batch ending in `Sync` (`S`), and the startup message, is answered by exactly one
//! `ReadyForQuery` (`Z`); counting both tells whether an answer is due. While one is, each byte
//! from the server restarts the clock; when the clock runs out the stream fails with
//! `TimedOut`, tokio-postgres ends the connection, every statement waiting on it fails as
//! "connection closed", and the pool discards it on its next recycle check.
//!
//! The watch sits above TLS, so it sees the protocol's own framing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose reads fail once the server owes an answer and stays silent for `limit`.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    limit: Option<Duration>,
    clock: Pin<Box<Sleep>>,
    /// `ReadyForQuery` messages the server still owes.
    due: u64,
    sent: Framer,
    received: Framer,
}

impl<S> Watched<S> {
    /// Watches `inner`, whose next message from the client is the startup message; `None`
    /// waits for ever.
    pub fn new(inner: S, limit: Option<Duration>) -> Self {
        Self {
            inner,
            limit,
            clock: Box::pin(tokio::time::sleep(Duration::ZERO)),
            due: 0,
            sent: Framer::untagged_first(),
            received: Framer::tagged(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn restart_clock(&mut self, cx: &mut Context<'_>) {
        if let Some(limit) = self.limit {
            self.clock.as_mut().reset(Instant::now() + limit);
            // Registers this task's waker, so a silent server still wakes the connection.
            let _ = self.clock.as_mut().poll(cx);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() && this.due > 0 {
                    let mut answered = 0;
                    this.received
                        .feed(fresh, |tag| answered += u64::from(tag == b'Z'));
                    this.due = this.due.saturating_sub(answered);
                    if this.due > 0 {
                        this.restart_clock(cx);
                    }
                } else {
                    this.received.feed(fresh, |_| {});
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.limit {
                Some(limit) if this.due > 0 && this.clock.as_mut().poll(cx).is_ready() => {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "PostgreSQL has not answered for {} s; the connection is dropped",
                            limit.as_secs()
                        ),
                    )))
                }
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            let mut asked = 0;
            this.sent.feed(&buf[..*n], |tag| {
                // The startup message (no tag), a simple query and a Sync each get one
                // ReadyForQuery.
                asked += u64::from(matches!(tag, 0 | b'Q' | b'S'));
            });
            if asked > 0 {
                if this.due == 0 {
                    this.restart_clock(cx);
                }
                this.due += asked;
            }
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Finds where messages start in one direction of the protocol: a message is a one-byte tag
/// and a four-byte length that counts itself but not the tag; the client's startup message has
/// no tag.
#[derive(Debug)]
struct Framer {
    header: [u8; 5],
    filled: usize,
    /// Body bytes of the current message not yet seen.
    rest: usize,
    untagged: bool,
}

impl Framer {
    fn tagged() -> Self {
        Self {
            header: [0; 5],
            filled: 0,
            rest: 0,
            untagged: false,
        }
    }

    fn untagged_first() -> Self {
        Self {
            untagged: true,
            ..Self::tagged()
        }
    }

    /// Reads `bytes` and calls `started` with the tag of each message whose header completes
    /// (0 for the untagged startup message).
    fn feed(&mut self, mut bytes: &[u8], mut started: impl FnMut(u8)) {
        while !bytes.is_empty() {
            if self.rest > 0 {
                let n = self.rest.min(bytes.len());
                self.rest -= n;
                bytes = &bytes[n..];
                continue;
            }
            let header_len = if self.untagged { 4 } else { 5 };
            let n = (header_len - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == header_len {
                let (tag, len) = if self.untagged {
                    (
                        0,
                        [
                            self.header[0],
                            self.header[1],
                            self.header[2],
                            self.header[3],
                        ],
                    )
                } else {
                    let h = self.header;
                    (h[0], [h[1], h[2], h[3], h[4]])
                };
                let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
                self.rest = len.saturating_sub(4);
                self.filled = 0;
                self.untagged = false;
                started(tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn tags_of(framer: &mut Framer, bytes: &[u8], chunk: usize) -> Vec<u8> {
        let mut tags = Vec::new();
        for piece in bytes.chunks(chunk) {
            framer.feed(piece, |t| tags.push(t));
        }
        tags
    }

    #[test]
    fn message_starts_are_found_however_the_bytes_are_split() {
        let mut startup = Vec::new();
        startup.extend_from_slice(&12_u32.to_be_bytes());
        startup.extend_from_slice(&[0, 3, 0, 0, b'u', 0, 0, 0]);
        let mut bytes = startup;
        bytes.extend(msg(b'P', b"SELECT 1\0\0\0"));
        bytes.extend(msg(b'S', b""));
        bytes.extend(msg(b'Q', b"BEGIN\0"));
        for chunk in [1, 2, 3, 7, 1000] {
            let mut f = Framer::untagged_first();
            assert_eq!(
                tags_of(&mut f, &bytes, chunk),
                vec![0, b'P', b'S', b'Q'],
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn a_silent_server_fails_the_read_after_the_limit_and_an_answer_stops_the_clock() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limit = Duration::from_millis(300);
        let (client, mut server) = tokio::io::duplex(1024);
        let mut watched = Watched::new(client, Some(limit));
        let mut startup = 8_u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&[0, 3, 0, 0]);
        watched.write_all(&startup).await.unwrap();
        // The server answers the start-up: the clock stops, and an idle connection is fine.
        server.write_all(&msg(b'Z', b"I")).await.unwrap();
        let mut buf = [0_u8; 64];
        assert_eq!(watched.read(&mut buf).await.unwrap(), 6);
        let idle = tokio::time::timeout(limit * 3, watched.read(&mut buf)).await;
        assert!(idle.is_err(), "nothing is due, so an idle read just waits");
        // A query the server never answers fails the read after the limit.
        watched.write_all(&msg(b'Q', b"SELECT 1\0")).await.unwrap();
        let started = Instant::now();
        let err = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(took >= limit && took < limit * 5, "{took:?}");
        let mut request = [0_u8; 64];
        assert!(server.read(&mut request).await.unwrap() > 0);
    }
}
