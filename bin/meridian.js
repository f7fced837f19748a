#!/usr/bin/env node
// The `meridian` command: runs the TypeScript sources through tsx's loader, so a clone
// works without a build step. `npm run build` produces dist/ for deployments that prefer it.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
