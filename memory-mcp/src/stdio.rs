//! The stdio transport: a line proxy in front of rmcp's.
//!
//! rmcp's line transport drops a line that is not JSON without a word (so do the other official
//! SDKs), which leaves a client that sent one waiting forever. JSON-RPC 2.0 asks for a `Parse
//! error` (-32700, id null) instead. The proxy reads standard input line by line (bounded, so
//! an oversized line is skipped without being buffered), answers the lines that are not JSON
//! itself, and forwards the others to rmcp through an in-process pipe; one writer merges its
//! answers with rmcp's output, a whole line at a time, onto standard output.

use serde::de::IgnoredAny;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;

use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::ServiceExt;

use crate::server::Server;
use crate::ServeError;

/// The in-process pipes' buffer (rmcp writes or reads a message in pieces of any size).
const PIPE_BYTES: usize = 64 * 1024;

/// Serves `server` over `input` and `output` until the input ends or the session fails.
pub(crate) async fn serve(
    server: Server,
    input: impl AsyncRead + Unpin + Send + 'static,
    output: impl AsyncWrite + Unpin + Send + 'static,
    max_line_bytes: usize,
) -> Result<(), ServeError> {
    let (to_rmcp, rmcp_input) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_output, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (replies, replies_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(forward_input(input, to_rmcp, replies, max_line_bytes));
    let writer = tokio::spawn(write_output(from_rmcp, replies_rx, output));
    let transport =
        AsyncRwTransport::new_server(rmcp_input, rmcp_output).with_max_line_length(max_line_bytes);
    let ended = match server.serve(transport).await {
        Ok(running) => {
            running.waiting().await.map(drop).map_err(|e| ServeError::Session(e.to_string()))
        }
        Err(e) => Err(ServeError::Handshake(e.to_string())),
    };
    reader.abort();
    // rmcp has dropped its end of the output pipe: the writer drains it and ends.
    let _ = writer.await;
    ended
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq)]
enum Line {
    /// A whole line (without its `\n`) is in the buffer.
    Complete,
    /// A line longer than the bound went by; nothing of it was kept.
    Oversized,
    /// The input ended (an unterminated last line is dropped, as rmcp does).
    End,
}

/// Reads one line into `line`, keeping at most `max` bytes of it.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut oversized = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::End);
        }
        let (piece, used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !oversized && line.len() + piece.len() > max {
            oversized = true;
            line.clear();
            line.shrink_to(max.min(PIPE_BYTES));
        }
        if !oversized {
            line.extend_from_slice(piece);
        }
        input.consume(used);
        if done {
            return Ok(if oversized { Line::Oversized } else { Line::Complete });
        }
    }
}

/// What the proxy does with a line.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// JSON of any shape: rmcp's (it answers the wrong shapes with -32600 itself).
    Forward,
    /// Blank: nobody's.
    Skip,
    /// Not JSON: this JSON-RPC Parse error is the answer.
    Reply(Vec<u8>),
}

fn judge(line: &[u8]) -> Verdict {
    use serde_json::error::Category;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Skip;
    }
    let Err(e) = serde_json::from_slice::<IgnoredAny>(line) else { return Verdict::Forward };
    if !matches!(e.classify(), Category::Syntax | Category::Eof) {
        return Verdict::Forward;
    }
    // Written by hand to keep JSON-RPC's usual member order (`json!` sorts them).
    let message = serde_json::Value::String(format!("Parse error: {e}"));
    let reply =
        format!(r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32700,"message":{message}}}}}"#);
    Verdict::Reply(reply.into_bytes())
}

/// Reads the client's lines: answers those that are not JSON, forwards the others to rmcp.
/// Dropping `to_rmcp` at the input's end ends rmcp's session.
async fn forward_input(
    input: impl AsyncRead + Unpin,
    mut to_rmcp: DuplexStream,
    replies: mpsc::UnboundedSender<Vec<u8>>,
    max: usize,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        match read_line(&mut input, &mut line, max).await {
            Ok(Line::Complete) => {}
            Ok(Line::Oversized) => {
                eprintln!("mcs mcp: discarded a JSON-RPC line longer than {max} bytes");
                continue;
            }
            Ok(Line::End) => return,
            Err(e) => {
                eprintln!("mcs mcp: reading standard input: {e}");
                return;
            }
        }
        match judge(&line) {
            Verdict::Reply(reply) => {
                if replies.send(reply).is_err() {
                    return;
                }
            }
            Verdict::Skip => {}
            Verdict::Forward => {
                line.push(b'\n');
                if to_rmcp.write_all(&line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes rmcp's output and the proxy's replies to `output`, whole lines, until rmcp's output
/// ends or `output` is closed.
async fn write_output(
    from_rmcp: DuplexStream,
    mut replies: mpsc::UnboundedReceiver<Vec<u8>>,
    mut output: impl AsyncWrite + Unpin,
) {
    let mut from_rmcp = BufReader::new(from_rmcp);
    // Cancelling `read_until` keeps what it read in `line`; the next call appends the rest.
    let mut line = Vec::new();
    loop {
        tokio::select! {
            biased;
            Some(mut reply) = replies.recv() => {
                reply.push(b'\n');
                if write_line(&mut output, &reply).await.is_err() {
                    return;
                }
            }
            read = from_rmcp.read_until(b'\n', &mut line) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                if write_line(&mut output, &line).await.is_err() {
                    return;
                }
                line.clear();
            }
        }
    }
    // A reply queued just before the input ended (and rmcp with it).
    while let Ok(mut reply) = replies.try_recv() {
        reply.push(b'\n');
        if write_line(&mut output, &reply).await.is_err() {
            return;
        }
    }
}

async fn write_line(output: &mut (impl AsyncWrite + Unpin), line: &[u8]) -> std::io::Result<()> {
    output.write_all(line).await?;
    output.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_the_rest_of_an_oversized_one_is_skipped() {
        let text = format!("short\n{}\nnext\ntail-without-newline", "x".repeat(100));
        let mut input = BufReader::with_capacity(8, text.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line, 10).await.unwrap(), Line::Complete);
        assert_eq!(line, b"short");
        assert_eq!(read_line(&mut input, &mut line, 10).await.unwrap(), Line::Oversized);
        assert!(line.len() <= 10);
        assert_eq!(read_line(&mut input, &mut line, 10).await.unwrap(), Line::Complete);
        assert_eq!(line, b"next");
        assert_eq!(read_line(&mut input, &mut line, 10).await.unwrap(), Line::End);
    }

    #[test]
    fn only_lines_that_are_not_json_get_a_parse_error() {
        let Verdict::Reply(reply) = judge(b"{this is not json") else { panic!("no reply") };
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["error"]["code"], -32700);
        assert_eq!(reply["id"], serde_json::Value::Null);
        assert!(reply["error"]["message"].as_str().unwrap().starts_with("Parse error: "));
        assert!(matches!(judge(b"{\"a\":1} trailing"), Verdict::Reply(_)));
        assert!(matches!(judge(b"\xff\xfe"), Verdict::Reply(_)));
        // JSON of a wrong shape is rmcp's to answer (-32600); blank lines nobody's.
        assert_eq!(judge(br#"{"hello":"world"}"#), Verdict::Forward);
        assert_eq!(judge(b"[1, 2]\r"), Verdict::Forward);
        assert_eq!(judge(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\"}"), Verdict::Forward);
        assert_eq!(judge(b"  \r"), Verdict::Skip);
    }
}
