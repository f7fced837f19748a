# Meridian's image: one region's broker, compiled JavaScript on production dependencies only.
#
#   docker build -t meridian .
#   docker run -v "$PWD/config/examples/s3-single-region:/etc/meridian:ro" \
#     -e MERIDIAN_ADMIN__TOKEN=... -p 9092:9092 -p 9644:9644 meridian \
#     broker --config /etc/meridian/us-east.yaml
#
# Conventions the image relies on (docker-compose.yml and config/examples follow them):
# Kafka on port 9092, the admin API on port 9644 (the HEALTHCHECK asks its /v1/health),
# data under /var/lib/meridian (a volume, writable by the unprivileged user "node").

# --- build: the TypeScript compiler and every dev dependency, thrown away afterwards ------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: dist/ and production dependencies ------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# bin/meridian.js runs dist/cli/main.js: there is no src/ (and no tsx) in this image.
COPY bin ./bin
# The dev mesh and the examples, for `meridian dev` and as a starting point.
COPY config ./config
RUN mkdir -p /var/lib/meridian && chown node:node /var/lib/meridian
USER node
VOLUME ["/var/lib/meridian"]
# Kafka, admin API (REST, /metrics, dashboard).
EXPOSE 9092 9644
# With a token configured (MERIDIAN_ADMIN__TOKEN) the check sends it, in case reads need it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "const t=process.env.MERIDIAN_ADMIN__TOKEN;fetch('http://127.0.0.1:9644/v1/health',{headers:t?{authorization:'Bearer '+t}:{}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "--initial-old-space-size=128", "--heap-growing-percent=100", "bin/meridian.js"]
CMD ["help"]
