import { randomUUID } from 'node:crypto';
import type { Action } from './settings';
import type { RequestFacts } from './request-facts';

// distribution's notification envelope (notifications/event.go), which existing receivers understand: a POST body
// {"events": [...]} of this media type. One event per pushed, pulled, mounted or deleted blob, manifest or tag.

export const ENVELOPE_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/** What the registry semantics say about a change (the rest of the event comes from the request and the instance). */
export interface EventTarget {
  mediaType?: string;
  digest?: string;
  size?: number;
  tag?: string;
  /** Mounts: the repository the blob came from. */
  fromRepository?: string;
  /** v1 events: the image id (v1 names images by id, not by digest). */
  imageId?: string;
  /** Where the target can be fetched, relative to the registry's base URL (e.g. /v2/a/b/blobs/sha256:...). */
  path?: string;
}

export interface RegistryEvent {
  /** Unique and kept on every delivery attempt: receivers deduplicate by it. */
  id: string;
  timestamp: string;
  action: Action;
  target: {
    mediaType?: string;
    digest?: string;
    size?: number;
    length?: number;
    repository: string;
    fromRepository?: string;
    url?: string;
    tag?: string;
    imageId?: string;
  };
  request?: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export interface EventSource {
  addr: string;
  instanceID: string;
}

/** A whole event: the change, the request that made it (if any), and this instance. */
export function makeEvent(action: Action, repository: string, target: EventTarget, request: RequestFacts | undefined, source: EventSource, now: Date): RegistryEvent {
  const t: RegistryEvent['target'] = { repository };
  if (target.mediaType !== undefined) t.mediaType = target.mediaType;
  if (target.digest !== undefined) t.digest = target.digest;
  if (target.size !== undefined) {
    t.size = target.size;
    t.length = target.size; // distribution sends both (length is the older name)
  }
  if (target.fromRepository !== undefined) t.fromRepository = target.fromRepository;
  if (target.path !== undefined && request) t.url = request.base + target.path;
  if (target.tag !== undefined) t.tag = target.tag;
  if (target.imageId !== undefined) t.imageId = target.imageId;
  const event: RegistryEvent = { id: randomUUID(), timestamp: now.toISOString(), action, target: t, actor: {}, source };
  if (request) {
    event.request = { id: request.id, addr: request.addr, host: request.host, method: request.method, useragent: request.useragent };
    if (request.actor !== null) event.actor = { name: request.actor };
  }
  return event;
}

/** The POST body for stored events (JSON strings, as the outbox keeps them): no parse, no re-serialization. */
export function envelope(events: readonly string[]): string {
  return `{"events":[${events.join(',')}]}`;
}
