# The single-container deployment: webhook-inbox on Node 24. Give it DATABASE_URL; without one it
# starts the embedded Postgres and keeps the data in the /app/.data volume.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# Young generation capped at 2 x 8 MB: Node 24 grew it to 2 x 64 MB under load (README, Performance).
ENV NODE_OPTIONS=--max-semi-space-size=8
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY sql ./sql
COPY src ./src
COPY scripts ./scripts
RUN mkdir -p /app/.data && chown node:node /app/.data
VOLUME /app/.data
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node itself, not `npm start`: `docker stop` sends SIGTERM to the command only. npm exits on it
# without the signal reaching node (npm -> sh -> node), the container ends, and node is killed
# mid-request, skipping the ordered shutdown.
CMD ["node", "src/main.ts"]
