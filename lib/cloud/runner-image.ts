import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, Stage } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { buildSync } from 'esbuild';
import { REPO_ROOT } from './settings.ts';

export const CONTAINER_DIR = join(REPO_ROOT, 'container');
const BUILD_CONTEXT_DIR = 'fte-runner-context';

/**
 * The Docker build context of the runner image: the Dockerfile, the claude-as-agent wrapper and the runner bundled to
 * ONE file by the local esbuild. The image then needs no build step of its own (no npm install of fte's dependencies, no TypeScript in the
 * image), and the context holds three files instead of the repository. Bundled here, at synth, exactly as NodejsFunction
 * bundles the Lambdas; `cdk synth` only stages the context as an asset — `docker build` runs at publish (`cdk deploy`).
 */
export function stageRunnerBuildContext(outdir: string): string {
  const dir = join(outdir, BUILD_CONTEXT_DIR);
  mkdirSync(dir, { recursive: true });
  buildSync({
    entryPoints: [join(CONTAINER_DIR, 'runner.ts')],
    outfile: join(dir, 'runner.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    // Bundled CommonJS dependencies call `require`, which ESM does not define.
    banner: {
      js: "import { createRequire as __fteCreateRequire } from 'node:module'; const require = __fteCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  for (const file of ['Dockerfile', 'claude-as-agent']) copyFileSync(join(CONTAINER_DIR, file), join(dir, file));
  return dir;
}

const ECR_IMAGE = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([a-z0-9._/-]+):([\w.-]+)$/;

/**
 * The runner image: `image` when one is configured (an ECR image gets pull rights through fromEcrRepository; any other
 * registry must be public), else built from container/ at deploy time.
 */
export function runnerImage(scope: Construct, image: string | null): ecs.ContainerImage {
  if (image !== null) {
    const ecrMatch = ECR_IMAGE.exec(image);
    if (ecrMatch === null) return ecs.ContainerImage.fromRegistry(image);
    const [, account, region, name, tag] = ecrMatch as unknown as [string, string, string, string, string];
    const repository = ecr.Repository.fromRepositoryAttributes(scope, 'RunnerRepository', {
      repositoryName: name,
      repositoryArn: `arn:${Stack.of(scope).partition}:ecr:${region}:${account}:repository/${name}`,
    });
    return ecs.ContainerImage.fromEcrRepository(repository, tag);
  }
  const stage = Stage.of(scope);
  // With bundling skipped (`cdk ... --exclusively` of another stack, or tests that set aws:cdk:bundling-stacks to []),
  // stage the sources as they are: the asset must exist, but nobody will build it.
  const context = Stack.of(scope).bundlingRequired && stage !== undefined ? stageRunnerBuildContext(stage.outdir) : CONTAINER_DIR;
  return ecs.ContainerImage.fromAsset(context, { platform: Platform.LINUX_AMD64 });
}
