import { fixedGlob, type NameMatcher } from '../auth/globs';
import { ACTIONS, type Action, type EndpointSettings } from './settings';

// Which events an endpoint wants: its actions, repository globs and ignored media types (settings.ts).

export class EndpointFilter {
  private readonly actions: ReadonlySet<Action>;
  private readonly repositories: readonly NameMatcher[];
  private readonly ignored: ReadonlySet<string>;

  constructor(endpoint: Pick<EndpointSettings, 'actions' | 'repositories' | 'ignoreMediaTypes'>, pullEvents: boolean) {
    // Without pull events none are made; an endpoint that does not name its actions gets all that are.
    this.actions = new Set((endpoint.actions ?? ACTIONS).filter((a) => a !== 'pull' || pullEvents));
    this.repositories = endpoint.repositories.map(fixedGlob);
    this.ignored = new Set(endpoint.ignoreMediaTypes);
  }

  wantsAction(action: Action): boolean {
    return this.actions.has(action);
  }

  matches(action: Action, repository: string, mediaType: string | undefined): boolean {
    return (
      this.actions.has(action) &&
      (mediaType === undefined || !this.ignored.has(mediaType)) &&
      this.repositories.some((m) => m.test(repository))
    );
  }
}
