/**
 * OCI hooks podman runs for the project's containers (hooks.d JSON files
 * pointing at the scripts in oci-hooks/).
 */
import path from 'node:path';
import type { Layout } from '../../drivers/layout.js';

/** The annotation every live clone carries; hooks match on it. */
export const CLONE_ANNOTATION = 'io.podman-tfork.clone-of';

export function hookConfigs(l: Layout): Record<string, string> {
  const hook = (stage: string, script: string) =>
    JSON.stringify(
      {
        version: '1.0.0',
        hook: { path: path.join(l.packageDir, 'oci-hooks', script), args: [script, stage], env: [`TFORK_ROOT=${l.root}`] },
        when: { annotations: { [CLONE_ANNOTATION]: '.+' } },
        stages: [stage],
      },
      null,
      2,
    ) + '\n';
  return { 'podman-tfork-clone-poststop.json': hook('poststop', 'clone-release') };
}
