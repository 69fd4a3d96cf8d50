# tsregistry container image.
#
#   docker build -t tsregistry .
#   docker run -d -p 5000:5000 -v registry-data:/data tsregistry
#
# Two stages: `build` compiles the TypeScript and the better-sqlite3 native addon (it needs python3, make
# and g++, which the full node image has), then drops the development dependencies; the runtime stage
# is a slim Node image with only dist/, the production node_modules, package.json and config.yml.
# The base images are arguments, for mirrors and air-gapped builds; both must be Debian-based with the
# same Node major and C library (the addon is compiled in one and loaded in the other):
#   docker build --build-arg BASE_IMAGE=mirror.example/node:20-bookworm-slim \
#                --build-arg BUILD_IMAGE=mirror.example/node:20-bookworm -t tsregistry .
ARG BASE_IMAGE=node:20-bookworm-slim
ARG BUILD_IMAGE=node:20-bookworm

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# JOBS: node-gyp compiles the native addon on every core.
ENV npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false JOBS=max
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${BASE_IMAGE}
# The registry runs as an unprivileged user; it owns only /data (the code stays root-owned, read-only to it).
RUN groupadd --system --gid 10001 registry \
 && useradd --system --uid 10001 --gid registry --home-dir /data --no-create-home --shell /usr/sbin/nologin registry \
 && mkdir -p /data \
 && chown registry:registry /data
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY config.yml ./config.yml

# Configuration: /app/config.yml (every default), overridden by REGISTRY_* variables (REGISTRY_ + the key
# path in upper snake case). Mount another file and point REGISTRY_CONFIG at it to replace config.yml;
# the variables below still win over any file, so change these four with -e / environment:.
# MALLOC_MMAP_THRESHOLD_: as npm start sets it (docs/storage.md, "Memory and garbage collection").
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    REGISTRY_HTTP_ADDR=0.0.0.0:5000 \
    REGISTRY_STORAGE_LOCAL_ROOT=/data/blobs \
    REGISTRY_INDEX_PATH=/data/index.db \
    REGISTRY_AUTH_TOKEN_SECRET_FILE=/data/token.key

USER registry
VOLUME /data
EXPOSE 5000
# Liveness with node itself (slim images have no curl): GET /healthz on the port of REGISTRY_HTTP_ADDR.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const a = process.env.REGISTRY_HTTP_ADDR || '127.0.0.1:5000'; const i = a.lastIndexOf(':'); let h = a.slice(0, i).replace('[', '').replace(']', ''); if (h === '' || h === '0.0.0.0' || h === '::') h = '127.0.0.1'; require('http').get({ host: h, port: Number(a.slice(i + 1)), path: '/healthz', timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', function () { this.destroy(); }).on('error', () => process.exit(1));"]
# SIGTERM (docker stop) lets in-flight requests finish for up to http.shutdownTimeout (30 s): give
# `docker stop` / compose a longer grace period than its 10 s default.
STOPSIGNAL SIGTERM
# The node flags of `npm start` (package.json): see "Memory and garbage collection" in docs/storage.md.
CMD ["node", "--initial-old-space-size=64", "--expose-gc", "dist/server.js"]
