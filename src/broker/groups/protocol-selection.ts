/**
 * Which assignment protocol a classic group uses: pure functions over the members, after
 * Kafka's GroupMetadata.supportsProtocols and selectProtocol: the candidates are the
 * protocols every member lists, each member votes for its first candidate, most votes win.
 */
import type { GroupProtocol } from './group-api.js';

export interface ProtocolMember {
  readonly protocols: readonly GroupProtocol[];
}

/**
 * May a member listing `protocols` join? The first member only needs a type and a protocol;
 * later ones need the group's type and one protocol that every current member lists. A
 * rejoining member is checked against its own old entry too, as Kafka does, which keeps
 * the common set non-empty.
 */
export function supportsProtocols(
  members: readonly ProtocolMember[],
  groupProtocolType: string | null,
  protocolType: string,
  protocols: readonly GroupProtocol[],
): boolean {
  if (protocolType === '' || protocols.length === 0) return false;
  if (members.length === 0) return true;
  if (protocolType !== groupProtocolType) return false;
  return protocols.some((p) => members.every((m) => lists(m, p.name)));
}

/**
 * The candidates are the protocols every member lists; each member votes for the first
 * candidate in its own list and the most votes win. Kafka breaks ties arbitrarily; here the
 * leader's preference order does, so a rebalance is reproducible.
 */
export function selectProtocol(members: readonly ProtocolMember[], leader: ProtocolMember): string {
  const candidates = leader.protocols.map((p) => p.name).filter((name) => members.every((m) => lists(m, name)));
  const votes = new Map<string, number>();
  for (const m of members) {
    const choice = m.protocols.find((p) => candidates.includes(p.name))?.name;
    if (choice !== undefined) votes.set(choice, (votes.get(choice) ?? 0) + 1);
  }
  let best = candidates[0];
  for (const name of candidates) if ((votes.get(name) ?? 0) > (votes.get(best) ?? 0)) best = name;
  // Join-time checks keep the candidates non-empty; the fallback only guards that invariant.
  return best ?? leader.protocols[0].name;
}

function lists(member: ProtocolMember, name: string): boolean {
  return member.protocols.some((p) => p.name === name);
}
