// Words and numbers shared by the cell view, the badge and the sidebar (the same forms as the
// dashboard's dashboard.js, so a size or a duration reads the same everywhere).
import { IPhaseRow } from './api';

/** STATUSES: the words the cell view, the badge and the sidebar style. Another plain word the API
 * may say one day shows as is (muted); anything else, a crafted store's, shows as ``unknown``. */
export const STATUSES = new Set([
  'running',
  'done',
  'restored',
  'interrupted',
  'failed',
  'pending',
  'stale',
  'incomplete',
  'gone',
  'unknown',
  'none'
]);

export function statusWord(status: unknown): string {
  if (typeof status !== 'string') {
    return 'unknown';
  }
  return STATUSES.has(status) || /^[a-z]{1,16}$/.test(status) ? status : 'unknown';
}

/** A finite number from the API, else null: a store can come with a notebook from anyone. */
export function num(value: unknown): number | null {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

/** Text from the API, else ''. */
export function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

export function duration(value: number | null | undefined): string {
  const seconds = num(value);
  if (seconds === null || seconds < 0) {
    return '–';
  }
  if (seconds >= 100 * 86400) {
    return (seconds / 86400).toPrecision(3) + 'd';
  }
  if (seconds < 10) {
    return seconds < 1 ? seconds.toFixed(2) + 's' : seconds.toFixed(1) + 's';
  }
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) {
    return h + 'h' + String(m).padStart(2, '0') + 'm';
  }
  return m ? m + 'm' + String(sec).padStart(2, '0') + 's' : sec + 's';
}

export function age(value: number | null | undefined, now: number): string {
  const epoch = num(value);
  if (!epoch) {
    return '–';
  }
  const seconds = Math.max(0, now - epoch);
  if (seconds < 60) {
    return Math.round(seconds) + 's ago';
  }
  if (seconds < 3600) {
    return Math.round(seconds / 60) + 'm ago';
  }
  if (seconds < 86400) {
    return Math.round(seconds / 3600) + 'h ago';
  }
  return new Date(epoch * 1000).toLocaleDateString();
}

export function size(value: number | null | undefined): string {
  const bytes = num(value);
  if (bytes === null || bytes < 0) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  if (n >= 10000) {
    return n.toPrecision(3) + ' ' + units[i]; // a crafted size: not a 300-digit number
  }
  return i === 0 ? n + ' B' : n.toFixed(1) + ' ' + units[i];
}

/** ``1,234``; a number too large to be a count (a crafted record) as ``1.00e+300``. */
export function count(value: unknown): string {
  const n = num(value);
  if (n === null) {
    return '?';
  }
  return Number.isSafeInteger(n) ? n.toLocaleString('en-US') : n.toPrecision(3);
}

export function plural(n: unknown, word: string): string {
  return count(n) + ' ' + word + (n === 1 ? '' : 's');
}

/** Local time to the minute, ``2026-11-22 10:31``, as ``%checkpoint history`` prints it. */
export function when(value: unknown): string {
  const epoch = num(value);
  if (!epoch) {
    return '–';
  }
  const d = new Date(epoch * 1000);
  if (isNaN(d.getTime())) {
    return '–';
  }
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}`
  );
}

/** ``18/40`` (or ``18/?`` for a loop of unknown length), null without progress. */
export function fraction(row: IPhaseRow): string | null {
  const p = row.progress;
  if (!p || num(p.done) === null) {
    return null;
  }
  return count(p.done) + '/' + (num(p.total) === null ? '?' : count(p.total));
}

/** 0..100 while a loop of known length runs, else null. */
export function percent(row: IPhaseRow): number | null {
  const p = row.progress;
  const done = p ? num(p.done) : null;
  const total = p ? num(p.total) : null;
  if (done === null || !total || total < 0) {
    return null;
  }
  return Math.max(0, Math.min(100, Math.floor((100 * done) / total)));
}

/** `` (resumed once)``, `` (resumed 3 times)``, or '' (the API's count: never summed here). */
export function resumedText(row: { resumes?: number | null }): string {
  const n = num(row.resumes);
  if (!n || n < 1) {
    return '';
  }
  return n === 1 ? ' (resumed once)' : ` (resumed ${count(n)} times)`;
}

/** The one line that says what state a phase is in and what to do about it. */
export function note(row: IPhaseRow, now: number): string {
  const at = fraction(row);
  const saved = row.saved;
  switch (row.status) {
    case 'running': {
      const p = row.progress;
      const parts = ['running' + (at ? ' ' + at : '')];
      const rate = p ? num(p.rate) : null;
      const eta = p ? num(p.eta) : null;
      if (rate) {
        parts.push(rate.toPrecision(3) + ' it/s');
      }
      if (p && eta !== null) {
        const updated = num(p.updated);
        const since = updated ? Math.max(0, now - updated) : 0;
        parts.push('ETA ' + duration(Math.max(0, eta - since)));
      }
      if (row.last_snapshot) {
        parts.push('saved ' + age(row.last_snapshot, now));
      }
      return parts.join(' · ');
    }
    case 'interrupted': {
      const parts = ['interrupted' + (at ? ' at ' + at : '')];
      if (saved !== null && saved !== undefined) {
        parts.push(plural(saved, 'item') + ' saved');
      }
      parts.push(row.resumable ? 're-run the cell to resume' : 're-run the cell');
      return parts.join(' · ');
    }
    case 'failed': {
      const parts = ['failed' + (at ? ' at ' + at : '')];
      if (saved) {
        parts.push(plural(saved, 'item') + ' saved');
      }
      parts.push(age(row.updated, now));
      parts.push('fix the cell and re-run it');
      return parts.join(' · ');
    }
    case 'pending':
      return 'pending · marked to run again · the next run of the cell runs it';
    case 'restored':
    case 'done': {
      const parts = [row.status + ' ' + age(row.updated, now)];
      if (num(row.duration) !== null) {
        // the server's total over every kernel that ran it: never summed here
        parts.push('ran ' + duration(row.duration) + resumedText(row));
      }
      if (at) {
        parts.push(at + ' items');
      }
      parts.push(plural(row.versions, 'version'));
      parts.push(size(row.size));
      return parts.join(' · ');
    }
    default:
      return statusWord(row.status) + ' · ' + age(row.updated, now);
  }
}

/** FNV-1a (32 bits, hex) of a cell body without trailing blanks, as the kernel's
 * nbresume.widget.source_hash: a checkpoint cell edited since it ran is stale. */
export function sourceHash(body: string): string {
  const text = body
    .split(/\r\n|\r|\n/)
    .map(line => line.replace(/\s+$/, ''))
    .join('\n')
    .replace(/^\n+|\n+$/g, '');
  let value = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    value ^= byte;
    value = Math.imul(value, 0x01000193) >>> 0;
  }
  return value.toString(16).padStart(8, '0');
}

/** The words of a magic's line as the kernel's ``shlex.split`` sees them (quotes, backslashes);
 * null for unbalanced quotes (the kernel refuses the line). */
export function shellWords(line: string): string[] | null {
  const words: string[] = [];
  let word: string | null = null;
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") {
        quote = '';
      } else {
        word += c;
      }
    } else if (quote === '"') {
      if (c === '"') {
        quote = '';
      } else if (c === '\\' && i + 1 < line.length && '\\"'.includes(line[i + 1])) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (/\s/.test(c)) {
      if (word !== null) {
        words.push(word);
        word = null;
      }
    } else {
      word = word ?? '';
      if (c === "'" || c === '"') {
        quote = c;
      } else if (c === '\\' && i + 1 < line.length) {
        word += line[++i];
      } else {
        word += c;
      }
    }
  }
  if (quote) {
    return null;
  }
  if (word !== null) {
    words.push(word);
  }
  return words;
}

/** The options of ``%%checkpoint`` that take a value (src/nbresume/_magics.py); argparse also
 * takes any unambiguous prefix of an option (``--ev 1``). */
const VALUE_OPTIONS = ['--every', '--exclude', '--validate'];
const FLAG_OPTIONS = ['--force', '--no-deps', '--quiet', '--continue'];

function takesValue(word: string): boolean {
  if (word.includes('=')) {
    return false;
  }
  const all = VALUE_OPTIONS.concat(FLAG_OPTIONS);
  if (all.includes(word)) {
    return VALUE_OPTIONS.includes(word);
  }
  const matches = all.filter(option => option.startsWith(word));
  return matches.length === 1 && VALUE_OPTIONS.includes(matches[0]);
}

/** The phase NAME of a ``%%checkpoint`` line's arguments, as argparse reads them; null if none. */
export function phaseName(args: string): string | null {
  const words = shellWords(args);
  if (!words) {
    return null;
  }
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === '--') {
      return words[i + 1] || null;
    }
    if (word.startsWith('-') && word.length > 1) {
      if (takesValue(word)) {
        i += 1;
      }
      continue;
    }
    return word || null;
  }
  return null;
}

/** ``%%checkpoint NAME ...`` as the kernel reads a cell: IPython drops leading blank lines, then
 * the indent common to all lines (textwrap.dedent), then looks for ``%%`` on the first line:
 * [is a checkpoint cell, NAME or null, body as the magic gets it]. */
export function checkpointMagic(source: string): [boolean, string | null, string] {
  let lines = source.split('\n');
  let start = 0;
  while (start < lines.length - 1 && /^\s*$/.test(lines[start])) {
    start += 1;
  }
  lines = lines.slice(start);
  let common: string | null = null;
  for (const line of lines) {
    if (/^\s*$/.test(line)) {
      continue;
    }
    const indent = /^[ \t]*/.exec(line)![0];
    if (common === null || indent.startsWith(common)) {
      common = common ?? indent;
    } else {
      let n = 0;
      while (n < common.length && n < indent.length && common[n] === indent[n]) {
        n += 1;
      }
      common = common.slice(0, n);
    }
  }
  const cut = (line: string) =>
    /^\s*$/.test(line) ? '' : line.slice((common ?? '').length);
  // NB. IPython splits the magic's name from its line at the first space only
  const match = /^%%checkpoint(?: (.*))?$/.exec(cut(lines[0]).replace(/\s+$/, ''));
  if (!match) {
    return [false, null, ''];
  }
  return [true, phaseName(match[1] || ''), lines.slice(1).map(cut).join('\n')];
}

/** The notebook a phase's last run came from, when it is not ``path`` (the open notebook, as
 * the contents API names it): two notebooks next to each other share one store, and a phase
 * NAME used in both is one phase. The kernel records its absolute notebook path. */
export function otherNotebook(row: IPhaseRow, path: string | null): string | null {
  const notebook = str(row.notebook).replace(/\\/g, '/'); // (a kernel on Windows)
  if (!notebook || path === null || notebook === path || notebook.endsWith('/' + path)) {
    return null;
  }
  return notebook.slice(notebook.lastIndexOf('/') + 1) || null;
}
