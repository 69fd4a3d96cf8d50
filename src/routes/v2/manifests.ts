import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RegistryContext } from '../../context';
import { readSmallBody } from '../../http/body';
import { parseDigest } from '../../storage/digest';
import { MEDIA } from '../../v2/manifest';
import { isTag } from '../../names';
import { location, mediaTypeOf, nextLink, pagination, queryParam } from './http';
import { requestFacts } from '../../notifications/request-facts';

// Manifests, tags, catalog and referrers.

/** Largest page a listing returns, whatever `n` asks for. */
const MAX_PAGE = 10_000;
/** Largest catalog page (distribution's default too): each page is filtered by the caller's rights. */
const MAX_CATALOG_PAGE = 1000;

export function manifestHandlers(ctx: RegistryContext) {
  const { v2, config, access, bridge, proxy } = ctx;

  return {
    async getManifest(request: FastifyRequest, reply: FastifyReply, name: string, reference: string) {
      const route = proxy?.route(name);
      let manifest;
      if (route) {
        const cached = await proxy!.manifest(route, name, reference, v2.on(requestFacts(request)));
        if (cached.warning) reply.header('warning', cached.warning);
        manifest = cached.manifest;
      } else {
        // A v1 tag is pullable over v2 too (docs/bridge.md): made on first use, followed when it moves.
        const resolved = bridge && isTag(reference) ? await bridge.beforeTagPull(name, reference) : undefined;
        manifest = await v2.on(requestFacts(request)).pull(name, reference, resolved);
      }
      reply.headers({
        'content-type': manifest.mediaType,
        'docker-content-digest': manifest.digest,
        etag: `"${manifest.digest}"`,
        'content-length': String(manifest.size),
      });
      if (request.method === 'HEAD') return reply.send();
      return reply.send(await v2.readManifest(manifest));
    },

    async putManifest(request: FastifyRequest, reply: FastifyReply, name: string, reference: string) {
      const body = await readSmallBody(request.raw, config.http.maxJsonBody);
      const { digest, subject } = await v2.on(requestFacts(request)).putManifest(name, reference, body, mediaTypeOf(request));
      if (subject) reply.header('oci-subject', subject);
      return reply
        .code(201)
        .headers({
          location: location(request, `/v2/${name}/manifests/${digest}`, config.http.trustProxy),
          'docker-content-digest': digest,
          'content-length': '0',
        })
        .send();
    },

    async deleteManifest(request: FastifyRequest, reply: FastifyReply, name: string, reference: string) {
      await v2.on(requestFacts(request)).deleteManifest(name, reference);
      return reply.code(202).header('content-length', '0').send();
    },

    /** DELETE /v2/_registry/repositories/<name>: the whole repository, with what it held. */
    async deleteRepository(request: FastifyRequest, reply: FastifyReply, name: string) {
      const deleted = await v2.on(requestFacts(request)).deleteRepository(name);
      return reply.code(202).type('application/json').send({ name, deleted });
    },

    async tags(request: FastifyRequest, reply: FastifyReply, name: string) {
      const { n, last } = pagination(request, MAX_PAGE);
      const tags = await v2.tags(name, last, n);
      nextLink(reply, `/v2/${name}/tags/list`, tags, n);
      return reply.type('application/json').send({ name, tags });
    },

    async catalog(request: FastifyRequest, reply: FastifyReply) {
      const { n, last } = pagination(request, MAX_CATALOG_PAGE);
      const repositories = await v2.catalog(last, n, access.listablePatterns(request.identity!));
      nextLink(reply, '/v2/_catalog', repositories, n);
      return reply.type('application/json').send({ repositories });
    },

    async referrers(request: FastifyRequest, reply: FastifyReply, name: string, digestRaw: string) {
      const digest = parseDigest(digestRaw);
      const artifactType = queryParam(request, 'artifactType');
      if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
      // A Buffer, so the media type goes out exactly (fastify would append a charset to a JSON type).
      const index = Buffer.from(JSON.stringify(await v2.referrers(name, digest, artifactType)));
      return reply.type(MEDIA.ociIndex).send(index);
    },
  };
}
