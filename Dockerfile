# mailfetchd's container image.
#   docker build -t mailfetchd .        (where no Docker engine runs: scripts/container-build.sh)
#   docker run -d --name mailfetchd \
#     -v mailfetchd-state:/var/lib/mailfetchd \
#     -v /srv/mailfetchd/config.yaml:/etc/mailfetchd/config.yaml:ro \
#     -v /srv/mailfetchd/secrets:/run/secrets:ro \
#     mailfetchd
# The config names its secrets under /run/secrets (docs/operator-guide.md, "Docker").
ARG NODE_IMAGE=node:22-bookworm-slim

# --- build: TypeScript and the native addon (better-sqlite3); its compilers stay here -------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# A TLS-inspecting proxy's CA for npm, when the builder passes one (a CA is not a secret).
ARG NODE_EXTRA_CA_CERTS=""
# nodedir: the image's own Node.js headers, so node-gyp builds offline instead of downloading.
ENV NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} \
    npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
# prune keeps the compiled addon and leaves exactly what `npm ci --omit=dev` installs.
RUN npm run build && npm prune --omit=dev && chmod 0755 dist/cli.js

# --- runtime: Node.js, tini, the compiled daemon and its production dependencies -----------
FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Owned by root, so the daemon's user cannot change its own code.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY config ./config
RUN ln -s /app/dist/cli.js /usr/local/bin/mailfetchd \
 && install -d -o node -g node -m 0700 /var/lib/mailfetchd \
 && install -d -m 0755 /etc/mailfetchd
ENV NODE_ENV=production \
    MAILFETCHD_CONFIG=/etc/mailfetchd/config.yaml
USER node
VOLUME ["/var/lib/mailfetchd"]
# Needs the config's `http` block; see docs/operator-guide.md "Health checks".
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["node", "/app/dist/cli.js", "healthcheck"]
# tini is PID 1: it forwards SIGTERM to the daemon (which stops gracefully) and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--", "mailfetchd"]
CMD ["run"]
