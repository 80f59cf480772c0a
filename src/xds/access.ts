/**
 * Who may read what over xDS: the pure decision from a client's identity
 * (its node id, and the client certificate it presented under mTLS) and the
 * `xds.access` rules to the namespaces it may read.
 *
 * A rule matches when every identity it names matches: its nodeIdPrefix (if
 * set) is a prefix of the node id, and its clientCertificate (if set) matches
 * a SAN of the verified client certificate. Node ids are chosen by the client,
 * so a rule that names a certificate is never granted on a node id alone.
 * The first matching rule wins; without rules every served namespace is
 * readable, with rules and no match none is.
 */

export interface XdsClientCertificateMatch {
  /** Exact URI SAN, e.g. a SPIFFE ID `spiffe://example.org/ns/a/sa/client`. */
  uri?: string;
  /** Exact DNS SAN, e.g. `client.tenant-a.svc`. */
  dns?: string;
}

export interface XdsAccessRule {
  nodeIdPrefix?: string;
  clientCertificate?: XdsClientCertificateMatch;
  namespaces: readonly string[];
}

/** The SANs of a client certificate the TLS handshake verified. */
export interface PeerIdentity {
  uris: readonly string[];
  dnsNames: readonly string[];
}

export interface ClientIdentity {
  nodeId: string;
  /** Undefined: no verified client certificate (plaintext, or TLS without one). */
  peer: PeerIdentity | undefined;
}

/** What a client may read: every namespace, or these. */
export type Readable =
  | { all: true }
  | { all: false; namespaces: ReadonlySet<string>; rule: number | undefined };

function certificateMatches(m: XdsClientCertificateMatch, peer: PeerIdentity | undefined): boolean {
  if (!peer) return false;
  if (m.uri !== undefined && !peer.uris.includes(m.uri)) return false;
  if (m.dns !== undefined && !peer.dnsNames.includes(m.dns)) return false;
  return m.uri !== undefined || m.dns !== undefined;
}

function ruleMatches(rule: XdsAccessRule, id: ClientIdentity): boolean {
  if (rule.nodeIdPrefix === undefined && rule.clientCertificate === undefined) return false;
  if (rule.nodeIdPrefix !== undefined && !id.nodeId.startsWith(rule.nodeIdPrefix)) return false;
  if (rule.clientCertificate !== undefined && !certificateMatches(rule.clientCertificate, id.peer))
    return false;
  return true;
}

export function readableNamespaces(
  rules: readonly XdsAccessRule[] | undefined,
  id: ClientIdentity,
): Readable {
  if (!rules?.length) return { all: true };
  const index = rules.findIndex((r) => ruleMatches(r, id));
  if (index < 0) return { all: false, namespaces: new Set(), rule: undefined };
  return { all: false, namespaces: new Set(rules[index]!.namespaces), rule: index };
}

/**
 * The URI and DNS SANs of Node's `subjectaltname` string
 * (`DNS:a.example, URI:spiffe://x/y, IP Address:10.0.0.1`). Node quotes an
 * entry that contains a comma or quote as JSON (`URI:"spiffe://x/a,b"`).
 */
export function parseSubjectAltName(san: string | undefined): PeerIdentity {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  if (!san) return { uris, dnsNames };
  const entries = san.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  for (const raw of entries) {
    const entry = raw.trim();
    const colon = entry.indexOf(":");
    if (colon < 0) continue;
    const kind = entry.slice(0, colon);
    let value = entry.slice(colon + 1);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (kind === "URI") uris.push(value);
    else if (kind === "DNS") dnsNames.push(value);
  }
  return { uris, dnsNames };
}
