/**
 * The client's errors: one class per kind, each with a stable `code` so that
 * callers can branch on `err.code` or on `instanceof`.
 */
import { type PublishedFormatError, STALE_OVER_BUDGET } from "../api/published.ts";
import type { ServiceSnapshot, StaleInfo } from "./registry.ts";

export type RosterClientErrorCode =
  | "NotSynced"
  | "UnknownService"
  | "NoHealthyEndpoints"
  | "InvalidPublication"
  | "StalePublication";

export class RosterClientError extends Error {
  readonly code: RosterClientErrorCode;
  readonly namespace: string | undefined;
  readonly service: string | undefined;
  constructor(
    code: RosterClientErrorCode,
    message: string,
    namespace?: string,
    service?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RosterClientError";
    this.code = code;
    this.namespace = namespace;
    this.service = service;
  }
}

/** The first list of published ConfigMaps has not arrived yet: await `ready()`. */
export class NotSyncedError extends RosterClientError {
  constructor(message = "Roster client has not synced yet: await client.ready() first") {
    super("NotSynced", message);
    this.name = "NotSyncedError";
  }
}

/** Synced, and no published ConfigMap exists for this service (or its namespace is not watched). */
export class UnknownServiceError extends RosterClientError {
  constructor(namespace: string, service: string, detail = "") {
    super(
      "UnknownService",
      `service ${namespace}/${service} is not published by Roster${detail ? ` (${detail})` : ""}`,
      namespace,
      service,
    );
    this.name = "UnknownServiceError";
  }
}

/** The service is published but no endpoint can take new traffic. */
export class NoHealthyEndpointsError extends RosterClientError {
  /** Published endpoints, by state (Ready, Draining, Unhealthy, ...). */
  readonly states: Readonly<Record<string, number>>;
  readonly revision: number;
  constructor(namespace: string, service: string, revision: number, states: Record<string, number>) {
    const total = Object.values(states).reduce((a, b) => a + b, 0);
    const detail =
      total === 0
        ? "no endpoints are published"
        : Object.entries(states)
            .map(([s, n]) => `${n} ${s}`)
            .join(", ");
    super(
      "NoHealthyEndpoints",
      `service ${namespace}/${service} has no endpoint that can take traffic (revision ${revision}: ${detail})`,
      namespace,
      service,
    );
    this.name = "NoHealthyEndpointsError";
    this.states = states;
    this.revision = revision;
  }
}

/** The service's ConfigMap exists but has never held a document this client can read. */
export class InvalidPublicationError extends RosterClientError {
  constructor(namespace: string, service: string, cause: PublishedFormatError | Error) {
    super(
      "InvalidPublication",
      `service ${namespace}/${service}: published ConfigMap is unreadable: ${cause.message}`,
      namespace,
      service,
      { cause },
    );
    this.name = "InvalidPublicationError";
  }
}

/**
 * The service's current document is stale: the operator could not publish
 * its current endpoint set (`reason` OverBudget: the document would exceed
 * the ConfigMap budget). The client refuses to route from it, and never
 * passes off an older set as current. `lastGood` is the last good snapshot
 * this client saw (undefined if none), for a caller that deliberately
 * chooses to keep routing on it.
 */
export class StalePublicationError extends RosterClientError {
  readonly stale: StaleInfo;
  readonly lastGood: ServiceSnapshot | undefined;
  constructor(namespace: string, service: string, stale: StaleInfo, lastGood: ServiceSnapshot | undefined) {
    const detail =
      stale.reason === STALE_OVER_BUDGET
        ? `its document would be ${stale.bytes} bytes, over the ${stale.limit}-byte ConfigMap budget`
        : stale.reason;
    super(
      "StalePublication",
      `service ${namespace}/${service}: ConfigMap ${stale.configMap} is published stale (revision ${stale.revision}: ${detail}); ` +
        `no current endpoint set${lastGood ? ` (last good revision ${lastGood.revision} kept in err.lastGood)` : ""}`,
      namespace,
      service,
    );
    this.name = "StalePublicationError";
    this.stale = stale;
    this.lastGood = lastGood;
  }
}
