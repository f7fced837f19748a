/**
 * Security metrics (security/README.md), read at scrape time from `broker.security`:
 * authentications by outcome, authorization denials, and how many users and ACLs the region
 * holds. No label names a principal or a user: the audit log does that, and metric labels
 * from client-chosen names would be unbounded.
 */
import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom, one, type Scrape } from './metrics-define.js';

export function registerSecurityMetrics(registry: Registry, scrape: Scrape): void {
  const security = () => scrape.broker.security;
  counterFrom(registry, 'meridian_sasl_authentications_total', 'SASL authentications (first and re-authentications) on SASL listeners, by outcome: succeeded or failed (a wrong password, an unknown user, a malformed exchange).', ['outcome'], () => {
    const a = security().stats.authentications;
    return [
      { labels: { outcome: 'succeeded' }, value: a.succeeded },
      { labels: { outcome: 'failed' }, value: a.failed },
    ];
  });
  counterFrom(registry, 'meridian_authorization_denials_total', 'Requests (or parts of requests: a topic, a group) that the ACLs denied; each denial is logged, rate-limited.', [], () => one(security().stats.denials));
  gaugeFrom(registry, 'meridian_security_users', 'Users with a SCRAM credential in this region.', [], () => one(security().credentials.describe().length));
  gaugeFrom(registry, 'meridian_security_acls', 'ACL bindings in this region (ACLs are per region, never replicated).', [], () => one(security().acls.size));
  gaugeFrom(registry, 'meridian_authorization_enabled', '1 when requests are checked against the ACLs (security.authorization.enabled), 0 when everything is allowed.', [], () => one(security().authorizer === null ? 0 : 1));
}
