/**
 * The built-in dashboard: GET / (the page), /dashboard/app.js and /dashboard/style.css, all
 * served from this module's strings, so a broker needs no build step, no CDN and no network
 * to show it. The page polls this broker's own /v1 routes (README.md in this folder).
 *
 * The three paths hold no data and are open without the admin token (auth.ts lists them);
 * the API calls the script makes are authorised as any other. They are left out of the
 * OpenAPI document: they are a page, not API.
 */
import type { FastifyInstance } from 'fastify';
import { CLIENT_APP_JS } from './client-app.js';
import { CLIENT_RENDER_JS } from './client-render.js';
import { PAGE_HTML } from './page.js';
import { STYLE_CSS } from './style.js';

export const DASHBOARD_PATHS = ['/', '/dashboard/app.js', '/dashboard/style.css'] as const;

/** The whole script: the drawing functions, then the polling loop that uses them. */
export const DASHBOARD_JS = `'use strict';\n(() => {\n${CLIENT_RENDER_JS}\n${CLIENT_APP_JS}\n})();\n`;

/** Everything from 'self': the script, its stylesheet and its fetches to the /v1 routes. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const ASSETS: Record<(typeof DASHBOARD_PATHS)[number], { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS },
  '/dashboard/style.css': { type: 'text/css; charset=utf-8', body: STYLE_CSS },
};

export function dashboardRoutes(app: FastifyInstance): void {
  for (const path of DASHBOARD_PATHS) {
    const asset = ASSETS[path];
    app.get(path, { schema: { hide: true } }, async (_req, reply) =>
      reply
        .type(asset.type)
        // Revalidated on every load, so a page left open after an upgrade gets the new script.
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .send(asset.body),
    );
  }
}
