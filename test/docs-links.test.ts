/**
 * The documentation holds together: every local link in README, CHANGELOG and docs/
 * points at a file that exists (and at a heading that exists, when it names one), README
 * stays a front door rather than a manual, and nothing cites the team's brief outside
 * the repository instead of docs/ARCHITECTURE.md.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README_MAX_BYTES = 16_000;

/** README, CHANGELOG and every Markdown page of docs/, as absolute paths. */
function markdownFiles(): string[] {
  const docs = join(ROOT, 'docs');
  return [
    join(ROOT, 'README.md'),
    join(ROOT, 'CHANGELOG.md'),
    ...readdirSync(docs)
      .filter((name) => name.endsWith('.md'))
      .map((name) => join(docs, name)),
  ].filter((path) => existsSync(path));
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

/** The text with fenced code blocks and inline code removed: a link there is sample text. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Targets of inline links `[text](target "title")` and reference definitions `[id]: target`. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const references = [...text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)].map(
    (m) => m[1]!,
  );
  return [...inline, ...references];
}

/** A link to another site or a mail address, which this test does not follow. */
function isExternal(target: string): boolean {
  return /^(?:https?:|mailto:)/i.test(target);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a Markdown file's headings make, duplicates numbered as GitHub does. */
function anchorsOf(path: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const match of prose(readFileSync(path, 'utf8')).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(match[1]!.replace(/`/g, ''));
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  /** The linking file, relative to the repository. */
  from: string;
  target: string;
  /** The file the link resolves to. */
  path: string;
  anchor: string | null;
}

/** Every local link of every Markdown file, resolved against the linking file. */
function localLinks(): Link[] {
  return markdownFiles().flatMap((file) =>
    linkTargets(readFileSync(file, 'utf8'))
      .filter((target) => !isExternal(target))
      .map((target) => {
        const [pathPart = '', anchor] = target.split('#', 2);
        const path = pathPart === '' ? file : resolve(dirname(file), decodeURIComponent(pathPart));
        return { from: relative(ROOT, file), target, path, anchor: anchor ?? null };
      }),
  );
}

// The team's brief lives outside the repository; written in two parts so this file does not cite it itself.
const OUTSIDE_BRIEF = new RegExp(['DESIGN', '\\.md|\\.\\./sha', 'red'].join(''));
describe('documentation links', () => {
  it('finds the pages and the links it checks', () => {
    const files = markdownFiles().map((path) => relative(ROOT, path));
    expect(files).toContain('README.md');
    expect(files).toContain(join('docs', 'ARCHITECTURE.md'));
    expect(localLinks().length).toBeGreaterThan(10);
  });

  it('points every local link at a file or folder that exists', () => {
    const broken = localLinks()
      .filter((link) => !existsSync(link.path))
      .map((link) => `${link.from}: ${link.target}`);
    expect(broken).toEqual([]);
  });

  it('points every anchor into a Markdown file at one of its headings', () => {
    const broken = localLinks()
      .filter((link) => link.anchor !== null && link.path.endsWith('.md') && existsSync(link.path))
      .filter((link) => !anchorsOf(link.path).has(link.anchor as string))
      .map((link) => `${link.from}: ${link.target}`);
    expect(broken).toEqual([]);
  });
});

describe('README', () => {
  it(`stays under ${README_MAX_BYTES} bytes: the reference lives in docs/`, () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThan(README_MAX_BYTES);
  });
});

describe('design citations', () => {
  it('cites docs/ARCHITECTURE.md, never a design brief outside the repository, in README, docs and src', () => {
    const files = [...markdownFiles(), ...filesUnder(join(ROOT, 'src'))];
    const citing = files
      .filter((path) => OUTSIDE_BRIEF.test(readFileSync(path, 'utf8')))
      .map((path) => relative(ROOT, path));
    expect(citing).toEqual([]);
  });
});
