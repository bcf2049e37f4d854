/** `discovery=static`: the `--targets` list, reported once. */
import { formatHostPort, parseHostPort } from '../core/address.js';
import { canonicalAddresses, type Discovery, type DiscoveryListener } from './types.js';

export class StaticDiscovery implements Discovery {
  private readonly addresses: readonly string[];

  /** `targets` are IP:port strings as validated by the config; they are re-formatted, sorted and deduplicated. */
  constructor(targets: readonly string[]) {
    this.addresses = Object.freeze(
      canonicalAddresses(
        targets.map((t) => {
          const hp = parseHostPort(t.trim(), false);
          return hp === undefined ? t.trim() : formatHostPort(hp);
        }),
      ),
    );
  }

  /** Calls `onChange` once, synchronously, with the list. */
  start(onChange: DiscoveryListener): void {
    onChange(this.addresses, undefined);
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
