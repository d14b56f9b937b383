//! The MCP server: tools, resources, and the notifications of new generations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    Implementation, JsonObject, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, SubscriptionContext};
use rmcp::{tool, tool_handler, tool_router, ErrorData as McpError, RoleServer, ServerHandler};
use tokio::sync::watch;

use crate::args::{GetArgs, InviteArgs, RecallArgs, RelatedArgs, RememberArgs};
use crate::{Backend, ServeError, ServeOptions, ToolError};

/// Resources listed per `resources/list` page.
const PAGE: usize = 100;
/// The scheme of a memory's resource URI.
const SCHEME: &str = "memory://";

const INSTRUCTIONS: &str = "A durable memory shared by agents. `recall` searches memories by \
    text and keywords (call it before solving a problem that may have been met before); \
    `remember` stores what was learned (question, insights, synthesis); `get` reads one memory, \
    `related` finds its neighbours, `forget` removes one, `stats` counts them, and `invite` asks \
    an apprentice process (navigator or witness) to work on a task with the memories. Memories \
    are also resources (memory://<id>); the resource list changes when new memories are \
    published, by this server or any other writer of the store.";

/// The MCP server over a [`Backend`], one per client session. Built and run by [`serve_stdio`]
/// (and `serve_http`); public so that a program can serve it over another transport with rmcp's
/// `ServiceExt::serve`.
pub struct Server {
    backend: Arc<dyn Backend>,
    tool_router: ToolRouter<Server>,
    generation: watch::Receiver<u64>,
    legacy: Arc<Legacy>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("generation", &*self.generation.borrow())
            .finish_non_exhaustive()
    }
}

/// Clients of protocol versions before 2026-07-28 subscribe with `resources/subscribe` and get
/// notifications unasked (from [`notify_legacy`], started when the session is initialized);
/// newer ones open a `subscriptions/listen` stream ([`Server::listen`]).
#[derive(Default)]
struct Legacy {
    /// Subscribed URIs and whether their memory existed at the last notification.
    subscribed: Mutex<HashMap<String, bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn memory_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(SCHEME).filter(|id| !id.is_empty())
}

/// The URIs among `uris` whose memory appeared or disappeared since `known` was last updated
/// (and `known` updated).
fn changed_uris(backend: &dyn Backend, known: &mut HashMap<String, bool>) -> Vec<String> {
    let mut changed = Vec::new();
    for (uri, existed) in known.iter_mut() {
        let exists = memory_id(uri).is_some_and(|id| backend.contains(id));
        if exists != *existed {
            *existed = exists;
            changed.push(uri.clone());
        }
    }
    changed
}

impl Server {
    /// A server over `backend`; `generation` is sent a new value by whoever watches the store
    /// ([`serve_stdio`] runs such a watcher) and drives the notifications.
    pub fn new(backend: Arc<dyn Backend>, generation: watch::Receiver<u64>) -> Server {
        Server { backend, tool_router: Self::tool_router(), generation, legacy: Arc::default() }
    }

    /// Runs `f` on the blocking pool; a failure (or a panic in the backend) becomes the tool
    /// error's text, never the server's end.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, ToolError> {
        let backend = self.backend.clone();
        match tokio::task::spawn_blocking(move || f(&*backend)).await {
            Ok(r) => r,
            Err(e) => Err(ToolError::Failed(format!("the call failed unexpectedly: {e}"))),
        }
    }

    async fn json(
        &self,
        f: impl FnOnce(&dyn Backend) -> Result<serde_json::Value, ToolError> + Send + 'static,
    ) -> Result<String, String> {
        self.run(f).await.map(|v| v.to_string()).map_err(|e| e.to_string())
    }
}

#[tool_router]
impl Server {
    #[tool(
        description = "Store one memory durably (question, insights, synthesis, domain; optionally sacred and a 0..1 score). Returns {\"id\": ...}. Other agents and processes see it at their next search."
    )]
    async fn remember(&self, Parameters(args): Parameters<RememberArgs>) -> Result<String, String> {
        args.check().map_err(|e| e.to_string())?;
        self.json(move |b| b.remember(args).map(|id| serde_json::json!({ "id": id }))).await
    }

    #[tool(
        description = "Search the memories by free text and/or keywords, optionally only one domain or only sacred memories. Returns the query's keywords, the generation searched and the hits, best first: id, score, domain, sacred, timestamp, gist (the question) and why (matched keywords and the score's parts). Use `get` for a hit's full memory."
    )]
    async fn recall(&self, Parameters(args): Parameters<RecallArgs>) -> Result<String, String> {
        args.check().map_err(|e| e.to_string())?;
        self.json(move |b| b.recall(args)).await
    }

    #[tool(
        description = "Memories related to one memory (its own keywords as the query, itself excluded), best first, in the same form as `recall`."
    )]
    async fn related(&self, Parameters(args): Parameters<RelatedArgs>) -> Result<String, String> {
        args.check().map_err(|e| e.to_string())?;
        self.json(move |b| b.related(args)).await
    }

    #[tool(description = "One memory, by id, with every field as stored (JSON).")]
    async fn get(&self, Parameters(args): Parameters<GetArgs>) -> Result<String, String> {
        self.json(move |b| b.get(&args.id)).await
    }

    #[tool(
        description = "Forget one memory, by id: durably removed from the records and from the next published index. Returns {\"forgotten\": id}."
    )]
    async fn forget(&self, Parameters(args): Parameters<GetArgs>) -> Result<String, String> {
        self.json(move |b| b.forget(&args.id).map(|()| serde_json::json!({ "forgotten": args.id })))
            .await
    }

    #[tool(
        description = "Counts of the newest index generation: memories, sacred memories, memories per domain, generation, segments and index bytes."
    )]
    async fn stats(&self) -> Result<String, String> {
        self.json(|b| b.stats()).await
    }

    #[tool(
        description = "Start an apprentice process of the given kind (navigator: finds the memories that bear on a task; witness: looks for emergence patterns), invite it to the task, and return its response: accepted, confidence, reason, insights and the memories it used. Takes up to timeout_ms."
    )]
    async fn invite(&self, Parameters(args): Parameters<InviteArgs>) -> Result<String, String> {
        args.check().map_err(|e| e.to_string())?;
        self.json(move |b| b.invite(args)).await
    }
}

/// Why `args` do not fit `T`, naming the argument (rmcp's own message does not say which).
fn shape<T: serde::de::DeserializeOwned>(tool: &str, args: &JsonObject) -> Option<String> {
    let value = serde_json::Value::Object(args.clone());
    serde_path_to_error::deserialize::<_, T>(value).err().map(|e| match e.path().to_string() {
        path if path == "." => format!("{tool}: invalid arguments: {}", e.inner()),
        path => format!("{tool}: argument `{path}`: {}", e.inner()),
    })
}

/// Why a known tool's arguments do not fit its schema, if they do not.
fn argument_error(tool: &str, args: Option<&JsonObject>) -> Option<String> {
    let empty = JsonObject::new();
    let args = args.unwrap_or(&empty);
    match tool {
        "remember" => shape::<RememberArgs>(tool, args),
        "recall" => shape::<RecallArgs>(tool, args),
        "related" => shape::<RelatedArgs>(tool, args),
        "get" | "forget" => shape::<GetArgs>(tool, args),
        "invite" => shape::<InviteArgs>(tool, args),
        _ => None,
    }
}

fn resource_error(uri: &str, e: ToolError) -> McpError {
    match e {
        ToolError::NotFound(_) => McpError::resource_not_found(format!("no memory at {uri}"), None),
        ToolError::Invalid(m) => McpError::invalid_params(format!("{uri}: {m}"), None),
        ToolError::Failed(m) => McpError::internal_error(format!("reading {uri}: {m}"), None),
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("mcs", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    /// Arguments that do not fit a tool's schema are the tool's error (the agent reads it and
    /// can fix the call); an unknown tool is a protocol error that names the tools there are.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if !self.tool_router.has_route(&name) {
            let tools: Vec<String> =
                self.tool_router.list_all().into_iter().map(|t| t.name.to_string()).collect();
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`; the tools are {}", tools.join(", ")),
                None,
            ));
        }
        if let Some(message) = argument_error(&name, request.arguments.as_ref()) {
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        match self.tool_router.call(ToolCallContext::new(self, request, context)).await {
            Err(e) if e.code == ErrorCode::INVALID_PARAMS => {
                Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{name}: invalid arguments: {}",
                    e.message
                ))])
                .into())
            }
            other => other,
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let offset = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                McpError::invalid_params(format!("resources/list: unknown cursor {c:?}"), None)
            })?,
        };
        let (items, more) = self
            .run(move |b| b.list(offset, PAGE))
            .await
            .map_err(|e| McpError::internal_error(format!("listing memories: {e}"), None))?;
        let next = more.then(|| (offset + items.len()).to_string());
        let resources = items
            .into_iter()
            .map(|m| {
                Resource::new(format!("{SCHEME}{}", m.id), m.gist)
                    .with_description(format!("a memory of domain {}", m.domain))
                    .with_mime_type("application/json")
            })
            .collect();
        // New generations change the list: a client must not cache it.
        let mut result = ListResourcesResult::with_all_items(resources).with_ttl_ms(0);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![ResourceTemplate::new(
            format!("{SCHEME}{{id}}"),
            "memory",
        )
        .with_description("One memory, by id, as stored (JSON)")
        .with_mime_type("application/json")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let Some(id) = memory_id(&uri).map(str::to_owned) else {
            return Err(McpError::resource_not_found(
                format!("{uri} is not a memory (memory://<id>)"),
                None,
            ));
        };
        let memory = self.run(move |b| b.get(&id)).await.map_err(|e| resource_error(&uri, e))?;
        let text = memory.to_string();
        let contents = ResourceContents::TextResourceContents {
            uri,
            mime_type: Some("application/json".into()),
            text,
            meta: None,
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.supported_by(&self.get_info().capabilities);
        if let Some(uris) = accepted.resource_subscriptions.as_mut() {
            uris.retain(|u| memory_id(u).is_some());
        }
        Some(accepted)
    }

    /// One `subscriptions/listen` stream: a list-changed notification per new generation (if
    /// asked), and an updated notification for each subscribed memory that appeared or was
    /// forgotten.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut generation = self.generation.clone();
        generation.mark_unchanged();
        let accepted = context.accepted().clone();
        let list_changed = accepted.resources_list_changed == Some(true);
        let uris = accepted.resource_subscriptions.unwrap_or_default();
        let backend = self.backend.clone();
        let mut known: HashMap<String, bool> = uris
            .into_iter()
            .map(|u| {
                let exists = memory_id(&u).is_some_and(|id| backend.contains(id));
                (u, exists)
            })
            .collect();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = generation.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let sink = context.sink();
                    if list_changed && sink.notify_resource_list_changed().await.is_err() {
                        return Ok(());
                    }
                    for uri in changed_uris(&*backend, &mut known) {
                        if sink.notify_resource_updated(uri).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let Some(id) = memory_id(&request.uri) else {
            return Err(McpError::invalid_params(
                format!("{} is not a memory (memory://<id>)", request.uri),
                None,
            ));
        };
        let exists = self.backend.contains(id);
        lock(&self.legacy.subscribed).insert(request.uri, exists);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.legacy.subscribed).remove(&request.uri);
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let (backend, generation) = (self.backend.clone(), self.generation.clone());
        tokio::spawn(notify_legacy(backend, generation, self.legacy.clone(), context.peer));
    }
}

/// Tells one initialized client of each new generation (the resource list changed) and of its
/// subscribed memories that appeared or were forgotten, until the client is gone.
async fn notify_legacy(
    backend: Arc<dyn Backend>,
    mut generation: watch::Receiver<u64>,
    legacy: Arc<Legacy>,
    peer: Peer<RoleServer>,
) {
    generation.mark_unchanged();
    while generation.changed().await.is_ok() {
        if peer.notify_resource_list_changed().await.is_err() {
            return;
        }
        let changed = changed_uris(&*backend, &mut lock(&legacy.subscribed));
        for uri in changed {
            let updated = ResourceUpdatedNotificationParam::new(uri);
            if peer.notify_resource_updated(updated).await.is_err() {
                return;
            }
        }
    }
}

/// Polls the backend for new generations and sends each to the sessions' notifiers (the
/// `listen` streams and [`notify_legacy`]).
pub(crate) async fn watch_generations(
    backend: Arc<dyn Backend>,
    tx: watch::Sender<u64>,
    poll: Duration,
) {
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // One atomic load when nothing changed; a new generation maps its new segments.
        let Ok(generation) = backend.refresh() else { continue };
        if generation != *tx.borrow() {
            tx.send_replace(generation);
        }
    }
}

/// The runtime a server runs on: two workers for the protocol, the backend's blocking calls
/// on their own pool.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)
}

/// Serves MCP over standard input and output until the client closes its end: the tools and
/// resources of `backend`, and a watcher that polls [`Backend::refresh`] every
/// [`ServeOptions::poll`] to notify the client of new generations. A line that is not JSON is
/// answered with a JSON-RPC parse error (-32700), one that is JSON but not a JSON-RPC message
/// with an invalid request error (-32600); the server reads on. Blocks the calling thread (it
/// builds its own runtime).
pub fn serve_stdio(backend: Arc<dyn Backend>, options: ServeOptions) -> Result<(), ServeError> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let first = backend.refresh().unwrap_or(0);
        let (tx, rx) = watch::channel(first);
        let server = Server::new(backend.clone(), rx);
        let watcher = tokio::spawn(watch_generations(backend, tx, options.poll));
        let ended = crate::stdio::serve(
            server,
            tokio::io::stdin(),
            tokio::io::stdout(),
            options.max_line_bytes,
        )
        .await;
        watcher.abort();
        ended
    })?;
    // Standard input is read on a blocking thread that may still wait for a byte.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
