// Words and numbers shared by the cell view, the badge and the sidebar (the same forms as the
// dashboard's dashboard.js, so a size or a duration reads the same everywhere).
import { IPhaseRow } from './api';

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
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

export function age(epoch: number | null | undefined, now: number): string {
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

export function size(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? n + ' B' : n.toFixed(1) + ' ' + units[i];
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function plural(n: number, word: string): string {
  return count(n) + ' ' + word + (n === 1 ? '' : 's');
}

/** ``18/40`` (or ``18/?`` for a loop of unknown length), null without progress. */
export function fraction(row: IPhaseRow): string | null {
  const p = row.progress;
  if (!p || p.done === null) {
    return null;
  }
  return count(p.done) + '/' + (p.total === null ? '?' : count(p.total));
}

/** 0..100 while a loop of known length runs, else null. */
export function percent(row: IPhaseRow): number | null {
  const p = row.progress;
  if (!p || p.done === null || !p.total) {
    return null;
  }
  return Math.min(100, Math.floor((100 * p.done) / p.total));
}

/** The one line that says what state a phase is in and what to do about it. */
export function note(row: IPhaseRow, now: number): string {
  const at = fraction(row);
  const saved = row.saved;
  switch (row.status) {
    case 'running': {
      const p = row.progress;
      const parts = ['running' + (at ? ' ' + at : '')];
      if (p && p.rate) {
        parts.push(p.rate.toPrecision(3) + ' it/s');
      }
      if (p && p.eta !== null && p.eta !== undefined) {
        const since = p.updated ? Math.max(0, now - p.updated) : 0;
        parts.push('ETA ' + duration(Math.max(0, p.eta - since)));
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
      if (row.duration !== null) {
        parts.push('ran ' + duration(row.duration));
      }
      if (at) {
        parts.push(at + ' items');
      }
      parts.push(plural(row.versions, 'version'));
      parts.push(size(row.size));
      return parts.join(' · ');
    }
    default:
      return row.status + ' · ' + age(row.updated, now);
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

/** ``%%checkpoint NAME ...`` on the cell's first line: [is a checkpoint cell, NAME or null]. */
export function checkpointMagic(source: string): [boolean, string | null, string] {
  const newline = source.indexOf('\n');
  const first = newline < 0 ? source : source.slice(0, newline);
  const match = /^%%checkpoint(?:\s+(.*))?$/.exec(first.trim());
  if (!match) {
    return [false, null, ''];
  }
  const body = newline < 0 ? '' : source.slice(newline + 1);
  const name = (match[1] || '').split(/\s+/).find(word => word && !word.startsWith('-'));
  return [true, name || null, body];
}
