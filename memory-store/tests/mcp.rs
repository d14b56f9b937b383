//! `mcs mcp` driven by a real MCP client (rmcp's) over stdio, by raw JSON-RPC lines for what a
//! well-behaved client never sends, and over streamable HTTP by a plain HTTP client (hyper).
//! Every wait is for an event (a reply, a notification, a line on stderr), bounded only by a
//! generous deadline that fails the test.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ProtocolVersion,
    ReadResourceRequestParams, ResourceContents, ResourceUpdatedNotificationParam,
    ServerNotification, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceError, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc as amp;

/// Fails a test that waits longer than this for an event that should come.
const DEADLINE: Duration = Duration::from_secs(120);

/// A model directory that does not exist: these tests pin the server without the embedding
/// model, also where the model is installed (CI).
const NO_MODEL: &str = "/nonexistent/mcs-tests-without-a-model";

fn mcs_transport(store: &Path) -> TokioChildProcess {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcs")).configure(|c| {
        c.env("MCS_MODEL_DIR", NO_MODEL).arg("--store").arg(store).arg("mcp");
    });
    TokioChildProcess::new(cmd).expect("starting mcs mcp")
}

/// What a legacy (initialize) client hears unasked.
#[derive(Debug)]
enum Heard {
    ListChanged,
    Updated(String),
}

#[derive(Clone)]
struct Listener(amp::UnboundedSender<Heard>);

impl ClientHandler for Listener {
    async fn on_resource_list_changed(&self, _c: NotificationContext<RoleClient>) {
        let _ = self.0.send(Heard::ListChanged);
    }
    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(Heard::Updated(p.uri));
    }
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

async fn call<S: rmcp::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    tool: &'static str,
    args: Value,
) -> CallToolResult {
    let Value::Object(map) = args else { panic!("arguments must be an object") };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn text(r: &CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.as_str()).collect()
}

/// The tool's JSON answer; panics (with the text) if the call was a tool error.
fn ok_json(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "tool error: {}", text(r));
    serde_json::from_str(&text(r)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(r)))
}

fn err_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected a tool error, got {}", text(r));
    text(r)
}

fn hit_ids(v: &Value) -> Vec<String> {
    v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
}

/// `mcs add` from a separate process, with a chosen id.
async fn mcs_add(store: &Path, id: &str, question: &str) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", NO_MODEL)
        .arg("--store")
        .arg(store)
        .args(["add", "--id", id, "--domain", "testing", "--question", question])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "mcs add: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_remembers_recalls_hears_another_writer_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (tx, mut heard) = amp::unbounded_channel();
    let client = Listener(tx).serve(mcs_transport(&store)).await.expect("MCP handshake");

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["forget", "get", "invite", "recall", "related", "remember", "stats"]);
    for t in &tools {
        assert!(t.description.as_deref().is_some_and(|d| d.len() > 40), "{} undescribed", t.name);
    }
    let recall = tools.iter().find(|t| t.name == "recall").unwrap();
    let props = recall.input_schema.get("properties").and_then(Value::as_object).unwrap();
    for p in ["text", "keywords", "domain", "sacred_only", "limit", "ranking"] {
        assert!(props.contains_key(p), "recall's schema lacks {p}");
    }

    let r = call(
        &client,
        "remember",
        json!({"domain": "architecture", "question": "How do apprentices share memory?",
               "insights": ["one immutable index, mapped read-only"],
               "synthesis": "They map the published segments", "sacred": true, "score": 0.9}),
    )
    .await;
    let mine = ok_json(&r)["id"].as_str().unwrap().to_owned();

    let found =
        ok_json(&call(&client, "recall", json!({"text": "apprentices share memory"})).await);
    assert_eq!(hit_ids(&found), [mine.as_str()]);
    assert!(found["hits"][0]["why"]["matched"].as_array().is_some_and(|m| !m.is_empty()));
    let got = ok_json(&call(&client, "get", json!({"id": mine})).await);
    assert_eq!(got["synthesis"], "They map the published segments");

    // Another process writes while the server runs: the server's lock is not in its way, and
    // the client is told of the new generation.
    let theirs = "6f1c2a52-6b7e-4d7a-9f41-0c8f4c1d2e3f";
    mcs_add(&store, theirs, "Which apprentices share the segments?").await;
    let uri = format!("memory://{theirs}");
    loop {
        let event = tokio::time::timeout(DEADLINE, heard.recv()).await.expect("no notification");
        if matches!(event, Some(Heard::ListChanged)) {
            let read = client.read_resource(ReadResourceRequestParams::new(uri.clone())).await;
            if read.is_ok() {
                break;
            }
        }
    }
    let read = client.read_resource(ReadResourceRequestParams::new(uri.clone())).await.unwrap();
    let ResourceContents::TextResourceContents { text: body, .. } = &read.contents[0] else {
        panic!("not text: {read:?}")
    };
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["question"], "Which apprentices share the segments?");
    let listed = client.list_resources(None).await.unwrap();
    assert!(listed.resources.iter().any(|r| r.uri == uri), "{listed:?}");

    let both = ok_json(&call(&client, "recall", json!({"keywords": ["apprentices"]})).await);
    let mut ids = hit_ids(&both);
    ids.sort();
    let mut want = vec![mine.clone(), theirs.to_owned()];
    want.sort();
    assert_eq!(ids, want);
    let related = ok_json(&call(&client, "related", json!({"id": theirs})).await);
    assert_eq!(hit_ids(&related), [mine.as_str()]);
    assert_eq!(ok_json(&call(&client, "stats", json!({})).await)["memories"], 2);

    // Subscribed to theirs, then forgotten: the client hears that resource updated.
    #[allow(deprecated)] // legacy-only in rmcp; this client negotiated a legacy version
    client
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri.clone()))
        .await
        .expect("resources/subscribe");
    let gone = ok_json(&call(&client, "forget", json!({"id": theirs})).await);
    assert_eq!(gone["forgotten"], theirs);
    loop {
        let event = tokio::time::timeout(DEADLINE, heard.recv()).await.expect("no notification");
        if let Some(Heard::Updated(u)) = event {
            assert_eq!(u, uri);
            break;
        }
    }
    let after = ok_json(&call(&client, "recall", json!({"keywords": ["apprentices"]})).await);
    assert_eq!(hit_ids(&after), [mine.as_str()]);
    let missing = err_text(&call(&client, "get", json!({"id": theirs})).await);
    assert!(missing.contains("no memory with id") && missing.contains(theirs), "{missing}");
    let again = err_text(&call(&client, "forget", json!({"id": theirs})).await);
    assert!(again.contains(theirs), "{again}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_stream_tells_of_a_memory_published_by_mcs_add() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let client = ()
        .serve_with_lifecycle(
            mcs_transport(&store),
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("MCP discover");
    let planned = "0b9d3c1e-2f4a-4e5b-8c6d-7e8f9a0b1c2d";
    let uri = format!("memory://{planned}");
    let mut sub = client
        .listen(
            SubscriptionFilter::builder()
                .resources_list_changed()
                .resource_subscription(uri.clone())
                .build(),
        )
        .await
        .expect("subscriptions/listen");
    assert_eq!(sub.acknowledged().resources_list_changed, Some(true));
    assert_eq!(sub.acknowledged().resource_subscriptions.as_deref(), Some(&[uri.clone()][..]));

    mcs_add(&store, planned, "Does the listen stream hear other writers?").await;
    let (mut list_changed, mut updated) = (false, false);
    while !(list_changed && updated) {
        let n = tokio::time::timeout(DEADLINE, sub.next()).await.expect("no notification");
        match n.expect("subscription failed").expect("subscription ended") {
            ServerNotification::ResourceListChangedNotification(_) => list_changed = true,
            ServerNotification::ResourceUpdatedNotification(u) => {
                assert_eq!(u.params.uri, uri);
                updated = true;
            }
            other => panic!("unexpected notification {other:?}"),
        }
    }
    let found = ok_json(&call(&client, "recall", json!({"text": "listen stream writers"})).await);
    assert_eq!(hit_ids(&found), [planned]);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_are_clear_errors_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let client = ().serve(mcs_transport(&store)).await.expect("MCP handshake");

    let unknown = client
        .call_tool(CallToolRequestParams::new("summon").with_arguments(Default::default()))
        .await;
    let Err(ServiceError::McpError(e)) = unknown else { panic!("unknown tool: {unknown:?}") };
    assert!(e.message.contains("unknown tool `summon`") && e.message.contains("recall"), "{e:?}");

    let big = "x".repeat(200_000);
    let e = err_text(&call(&client, "remember", json!({"domain": "d", "question": big})).await);
    assert!(e.contains("`question`") && e.contains("200000 bytes"), "{e}");
    let e = err_text(&call(&client, "recall", json!({"limit": "ten", "text": "memory"})).await);
    assert!(e.contains("limit") || e.contains("u32"), "{e}");
    let e = err_text(&call(&client, "remember", json!({"question": "no domain"})).await);
    assert!(e.contains("domain"), "{e}");
    let e = err_text(
        &call(&client, "remember", json!({"domain": "d", "question": "q", "score": 7})).await,
    );
    assert!(e.contains("score"), "{e}");
    let e = err_text(&call(&client, "get", json!({"id": "not-a-uuid"})).await);
    assert!(e.contains("not a memory id"), "{e}");
    let e = err_text(&call(&client, "recall", json!({"text": "a an the"})).await);
    assert!(e.contains("no keywords"), "{e}");
    let e = err_text(&call(&client, "recall", json!({"text": "memory", "ranking": "magic"})).await);
    assert!(e.contains("ranking"), "{e}");

    // Still serving: a write and a search after all of that.
    let r =
        call(&client, "remember", json!({"domain": "d", "question": "still serving memory"})).await;
    let id = ok_json(&r)["id"].as_str().unwrap().to_owned();
    let found = ok_json(&call(&client, "recall", json!({"text": "serving memory"})).await);
    assert_eq!(hit_ids(&found), [id]);
    client.cancel().await.unwrap();
}

/// A raw JSON-RPC session: lines written to `mcs mcp`'s standard input, its replies read on a
/// thread.
struct Raw {
    child: std::process::Child,
    input: std::process::ChildStdin,
    replies: mpsc::Receiver<Value>,
}

impl Raw {
    fn start(store: &Path) -> Raw {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcs"))
            .env("MCS_MODEL_DIR", NO_MODEL)
            .arg("--store")
            .arg(store)
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).expect("the server wrote non-JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Raw { child, input, replies }
    }

    fn send(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).unwrap();
        self.input.write_all(b"\n").unwrap();
        self.input.flush().unwrap();
    }

    /// The next message that is a reply (has `result` or `error`).
    fn reply(&self) -> Value {
        loop {
            let v = self.replies.recv_timeout(DEADLINE).expect("no reply from mcs mcp");
            if v.get("result").is_some() || v.get("error").is_some() {
                return v;
            }
        }
    }
}

#[test]
fn malformed_and_oversized_json_rpc_leave_the_server_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::start(&dir.path().join("store"));
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#);
    assert_eq!(raw.reply()["result"]["serverInfo"]["name"], "mcs");
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);

    // Not JSON at all: a Parse error, with a null id (there is none to answer).
    raw.send("{this is not json");
    let e = raw.reply();
    assert_eq!((e["id"].clone(), e["error"]["code"].as_i64()), (Value::Null, Some(-32700)), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().starts_with("Parse error"), "{e}");
    raw.send("\u{1}\u{2} binary noise");
    assert_eq!(raw.reply()["error"]["code"], -32700);
    // JSON, but not a JSON-RPC message: an Invalid Request error.
    raw.send(r#"{"hello":"world"}"#);
    let e = raw.reply();
    assert_eq!(e["error"]["code"], -32600, "{e}");
    // A line beyond the server's 1 MiB bound: discarded without being buffered.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"recall","arguments":{{"text":"{}"}}}}}}"#,
        "memory ".repeat(300_000)
    );
    raw.send(&huge);
    // An unknown method: Method not found.
    raw.send(r#"{"jsonrpc":"2.0","id":3,"method":"memories/teleport"}"#);
    let e = raw.reply();
    assert_eq!((e["id"].as_i64(), e["error"]["code"].as_i64()), (Some(3), Some(-32601)), "{e}");
    // Still up: a tool call is answered (the oversized one never was: 4 is the next reply).
    raw.send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"stats","arguments":{}}}"#);
    let r = raw.reply();
    assert_eq!(r["id"], 4, "{r}");
    let stats: Value =
        serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(stats["memories"], 0);

    // Closing standard input ends the server cleanly.
    drop(raw.input);
    let status = raw.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let client = ().serve(mcs_transport(&store)).await.expect("MCP handshake");
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12 {
        let peer = client.peer().clone();
        calls.spawn(async move {
            let tool = if i % 3 == 0 { "recall" } else { "remember" };
            let args = if tool == "recall" {
                json!({"text": "concurrent writers"})
            } else {
                json!({"domain": "load", "question": format!("concurrent writers number {i}")})
            };
            let Value::Object(map) = args else { unreachable!() };
            let r = peer.call_tool(CallToolRequestParams::new(tool).with_arguments(map)).await;
            (tool, r.expect("call"))
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = calls.join_next().await {
        let (tool, r) = done.unwrap();
        let v = ok_json(&r);
        if tool == "remember" {
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 8);
    let all =
        ok_json(&call(&client, "recall", json!({"text": "concurrent writers", "limit": 50})).await);
    let mut found = hit_ids(&all);
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
    assert_eq!(ok_json(&call(&client, "stats", json!({})).await)["memories"], 8);
    client.cancel().await.unwrap();
}

/// `mcs mcp --http 127.0.0.1:0`, and the address it said it listens on.
struct HttpServer {
    child: std::process::Child,
    addr: String,
}

impl HttpServer {
    fn start(store: &Path) -> HttpServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcs"))
            .env("MCS_MODEL_DIR", NO_MODEL)
            .arg("--store")
            .arg(store)
            .args(["mcp", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        // Reads stderr to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = lines.recv_timeout(DEADLINE).expect("mcs mcp --http never said it listens");
            if let Some(url) = line.strip_prefix("mcs mcp: listening on http://") {
                break url.strip_suffix("/mcp").expect("the endpoint is /mcp").to_owned();
            }
        };
        HttpServer { child, addr }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP POST of a JSON-RPC message: the status, the session id the server set, and the
/// JSON-RPC messages of the answer (a JSON body or the data of an event stream).
async fn post(
    addr: &str,
    host: &str,
    session: Option<&str>,
    message: Value,
) -> (u16, Option<String>, Vec<Value>) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connecting");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::post("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request =
            request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18");
    }
    let body = http_body_util::Full::new(hyper::body::Bytes::from(message.to_string()));
    let response = sender.send_request(request.body(body).unwrap()).await.expect("HTTP request");
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let session = header("mcp-session-id");
    let sse = header("content-type").is_some_and(|c| c.starts_with("text/event-stream"));
    let bytes = response.into_body().collect().await.expect("HTTP body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
    let messages = if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| d.starts_with('{'))
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect()
    } else if text.trim_start().starts_with('{') {
        vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))]
    } else {
        Vec::new()
    };
    (status, session, messages)
}

/// The reply to request `id` among `messages`.
fn reply_to(messages: &[Value], id: i64) -> &Value {
    messages
        .iter()
        .find(|m| m["id"].as_i64() == Some(id))
        .unwrap_or_else(|| panic!("no reply to {id} in {messages:?}"))
}

fn tool_json(reply: &Value) -> Value {
    assert_ne!(reply["result"]["isError"], true, "tool error: {reply}");
    serde_json::from_str(reply["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_lists_tools_remembers_and_recalls() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::start(&dir.path().join("store"));
    let addr = server.addr.as_str();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "http-test", "version": "1"}}});
    // A Host that is not loopback (DNS rebinding) is refused before any MCP.
    let (status, _, _) = post(addr, "attacker.example", None, init.clone()).await;
    assert_eq!(status, 403);

    let (status, session, messages) = post(addr, addr, None, init).await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(reply_to(&messages, 1)["result"]["serverInfo"]["name"], "mcs");
    let session = session.expect("the server opens a session");
    let s = Some(session.as_str());
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(addr, addr, s, initialized).await;
    assert_eq!(status, 202);

    let (_, _, messages) =
        post(addr, addr, s, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let tools = reply_to(&messages, 2)["result"]["tools"].as_array().unwrap().clone();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["forget", "get", "invite", "recall", "related", "remember", "stats"]);

    let remember = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "remember", "arguments": {"domain": "transport",
        "question": "Can agents reach the memory over HTTP?", "synthesis": "Streamable HTTP"}}});
    let (_, _, messages) = post(addr, addr, s, remember).await;
    let id = tool_json(reply_to(&messages, 3))["id"].as_str().unwrap().to_owned();
    let recall = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "recall", "arguments": {"text": "memory over http"}}});
    let (_, _, messages) = post(addr, addr, s, recall).await;
    let found = tool_json(reply_to(&messages, 4));
    assert_eq!(hit_ids(&found), [id]);
}

#[test]
fn http_refuses_an_address_that_is_not_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcs"))
        .env("MCS_MODEL_DIR", NO_MODEL)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["mcp", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.0.0.0:0 is not a loopback address"), "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    assert!(!dir.path().join("store").exists(), "a refused server created the store");
}
