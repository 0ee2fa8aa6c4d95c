# The FHIRcast hub on a hospital's own server: the same Worker and Durable Object as on
# Cloudflare (edge-hub/build, `make hub-build`), run by open-source workerd, each topic's state
# in SQLite files on local disk. README.md "Deploying" has the steps; `make serve` runs it here.
#
#   workerd serve selfhost/fhircast.capnp \
#     --directory-path storage=/var/lib/fhircast-hub --socket-addr http=127.0.0.1:8787
#
# TLS is terminated by the hospital's reverse proxy in front of the socket (nginx, HAProxy…),
# which must pass WebSocket upgrades through. Settings are environment variables of the
# workerd process, the same names as the wrangler vars (README "Settings"); unset ones take
# their defaults. AUTH_MODE has none: set `jwt` (with JWT_* keys) or, on a developer's machine
# only, `open`.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "hub", worker = .hub),
    # Where every topic's SQLite database lives (override with --directory-path storage=...).
    (name = "storage", disk = (path = "/var/lib/fhircast-hub", writable = true)),
    # Outbound requests (the identity provider's JWKS): public and private addresses.
    (name = "internet", network = (allow = ["public", "private"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [
    # Plain HTTP for the reverse proxy (override with --socket-addr http=host:port).
    (name = "http", address = "127.0.0.1:8787", http = (), service = "hub"),
  ],
);

const hub :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "../edge-hub/build/index.js"),
    (name = "index_bg.wasm", wasm = embed "../edge-hub/build/index_bg.wasm"),
  ],
  # As edge-hub/wrangler.toml.
  compatibilityDate = "2026-07-01",
  bindings = [
    (name = "TOPIC", durableObjectNamespace = "TopicObject"),
    (name = "ACK_TIMEOUT_SECONDS", fromEnvironment = "ACK_TIMEOUT_SECONDS"),
    (name = "ALLOWED_ORIGINS", fromEnvironment = "ALLOWED_ORIGINS"),
    # AuditEvents go to standard output (no Queue here): one `AuditEvent {...}` line each.
    (name = "AUDIT_SINK", fromEnvironment = "AUDIT_SINK"),
    (name = "AUDIT_SITE", fromEnvironment = "AUDIT_SITE"),
    (name = "AUTH_MODE", fromEnvironment = "AUTH_MODE"),
    (name = "CONNECT_TIMEOUT_SECONDS", fromEnvironment = "CONNECT_TIMEOUT_SECONDS"),
    (name = "DEDUP_WINDOW", fromEnvironment = "DEDUP_WINDOW"),
    (name = "DEFAULT_LEASE_SECONDS", fromEnvironment = "DEFAULT_LEASE_SECONDS"),
    (name = "DERIVE_OPEN_EVENTS", fromEnvironment = "DERIVE_OPEN_EVENTS"),
    (name = "HEARTBEAT_SECONDS", fromEnvironment = "HEARTBEAT_SECONDS"),
    (name = "HUB_BASE_PATH", fromEnvironment = "HUB_BASE_PATH"),
    (name = "JWT_AUDIENCE", fromEnvironment = "JWT_AUDIENCE"),
    (name = "JWT_HS256_SECRET", fromEnvironment = "JWT_HS256_SECRET"),
    (name = "JWT_ISSUER", fromEnvironment = "JWT_ISSUER"),
    (name = "JWT_JWKS_URL", fromEnvironment = "JWT_JWKS_URL"),
    (name = "JWT_PUBLIC_KEYS", fromEnvironment = "JWT_PUBLIC_KEYS"),
    (name = "MAX_BODY_BYTES", fromEnvironment = "MAX_BODY_BYTES"),
    (name = "MAX_BUNDLE_ENTRIES", fromEnvironment = "MAX_BUNDLE_ENTRIES"),
    (name = "MAX_CLOCK_AHEAD_SECONDS", fromEnvironment = "MAX_CLOCK_AHEAD_SECONDS"),
    (name = "MAX_CONTENT_BYTES", fromEnvironment = "MAX_CONTENT_BYTES"),
    (name = "MAX_LEASE_SECONDS", fromEnvironment = "MAX_LEASE_SECONDS"),
    (name = "MAX_MESSAGE_BYTES", fromEnvironment = "MAX_MESSAGE_BYTES"),
    (name = "MAX_PENDING_ACKS", fromEnvironment = "MAX_PENDING_ACKS"),
    (name = "MAX_SUBSCRIPTIONS_PER_TOPIC", fromEnvironment = "MAX_SUBSCRIPTIONS_PER_TOPIC"),
    (name = "MAX_TOPIC_BYTES", fromEnvironment = "MAX_TOPIC_BYTES"),
    (name = "NON_CURRENT_UPDATES", fromEnvironment = "NON_CURRENT_UPDATES"),
    (name = "REQUIRE_TOPIC_BINDING", fromEnvironment = "REQUIRE_TOPIC_BINDING"),
    (name = "TIMELINE_LIMIT", fromEnvironment = "TIMELINE_LIMIT"),
  ],
  durableObjectNamespaces = [
    # The key names the objects' storage: keep it (changing it orphans every stored topic).
    (className = "TopicObject", uniqueKey = "fhircast-hub-topic-v1", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "storage"),
  globalOutbound = "internet",
);
