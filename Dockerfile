# One image for both the pipeline (`billstream start`) and the ERP sandbox
# (`billstream erp-sandbox`); compose.yaml picks the command. Node 24 runs the
# TypeScript sources directly by type stripping, so there is no build step.
FROM node:24-slim

ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    HTTP_PORT=8080

# Nothing here needs root; the node image ships the unprivileged user `node`.
WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first, so a source change does not reinstall them.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci

COPY --chown=node:node . .

EXPOSE 8080 8090
CMD ["npx", "billstream", "start"]
