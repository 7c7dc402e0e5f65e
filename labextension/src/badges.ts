// A badge on each checkpoint cell (restored / running 45% / interrupted / failed / stale /
// duplicate), with the phase's one-line note as its hover title; one `NotebookPhases` per open
// notebook, which also tells the sidebar which store and which phase names the notebook has.
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { INotebookView, IPhaseRef, IPhaseRow, PHASE_MIME } from './api';
import {
  checkpointMagic,
  fraction,
  note,
  otherNotebook,
  percent,
  sourceHash,
  statusWord
} from './format';
import { StoreWatcher, watcherFor } from './watcher';

const DEBOUNCE_MS = 300;

interface ICellPhase {
  name: string;
  ref: IPhaseRef | null; // the last phase view in the cell's outputs (or remembered), if any
  body: string;
  renamedFrom?: string; // the phase its view is of, when the cell's line names another now
  duplicate?: string; // the other cells with the same NAME ("cells 2 and 7")
}

/** What a code cell says of its phase: a ``%%checkpoint`` line, the kernel's view, or both.
 * ``remembered``: the view the cell's outputs had before they were cleared. */
export function cellPhase(cell: Cell, remembered: IPhaseRef | null = null): ICellPhase | null {
  if (cell.model.type !== 'code') {
    return null;
  }
  const [isCheckpoint, parsed, body] = checkpointMagic(cell.model.sharedModel.getSource());
  if (!isCheckpoint) {
    return null; // the magic line is gone: whatever the outputs say, not a checkpoint cell now
  }
  const ref = outputRef(cell) ?? remembered;
  if (!ref) {
    return parsed ? { name: parsed, ref, body } : null;
  }
  if (parsed && parsed !== ref.name) {
    // the line names another phase now: the view (and its status) is the old name's
    return { name: parsed, ref, body, renamedFrom: ref.name };
  }
  return { name: ref.name, ref, body };
}

/** The last phase view in a code cell's outputs. */
export function outputRef(cell: Cell): IPhaseRef | null {
  let ref: IPhaseRef | null = null;
  const outputs = (cell as CodeCell).model.outputs;
  for (let i = 0; i < (outputs?.length ?? 0); i++) {
    const data = outputs.get(i).data[PHASE_MIME] as unknown as IPhaseRef | undefined;
    if (data && typeof data.name === 'string') {
      ref = data;
    }
  }
  return ref;
}

/** The store directory a cell's phase view names ('' for none): its run's, not a later one's. */
function cellDir(phase: ICellPhase | null): string {
  const dir = phase && phase.ref ? phase.ref.dir : '';
  return typeof dir === 'string' ? dir : '';
}

/** "cells 2 and 7", "cells 2, 5 and 7" (1-based, as a user counts them). */
function cellList(indexes: number[]): string {
  const numbers = indexes.map(i => String(i + 1));
  const last = numbers.pop();
  return `cells ${numbers.join(', ')} and ${last}`;
}

/** The badge's word and class for a phase row, as this cell shows it. */
export function badgeState(
  row: IPhaseRow | undefined,
  phase: ICellPhase,
  now: number,
  path: string | null = null
): [string, string, string] {
  const [word, status, title] = ownBadgeState(row, phase, now);
  const other = row && status !== 'duplicate' ? otherNotebook(row, path) : null;
  if (!other) {
    return [word, status, title];
  }
  // (another notebook's run of the same NAME: the same phase, but not this cell's run)
  return [`${word} · ${other}`, status, `${title} · last run from ${other}, not this notebook`];
}

function ownBadgeState(
  row: IPhaseRow | undefined,
  phase: ICellPhase,
  now: number
): [string, string, string] {
  if (phase.duplicate) {
    return [
      'duplicate',
      'duplicate',
      `${phase.name}: ${phase.duplicate} both checkpoint as ${phase.name}: they overwrite one ` +
        'phase, so neither badge can tell its own state; give each cell its own name'
    ];
  }
  if (phase.renamedFrom !== undefined) {
    return [
      'stale',
      'stale',
      `${phase.name}: renamed from ${phase.renamedFrom} since it ran (its output is ` +
        `${phase.renamedFrom}'s); re-running it runs phase ${phase.name}`
    ];
  }
  if (!row) {
    return ['not saved', 'none', `${phase.name}: nothing saved yet; run the cell`];
  }
  const line = `${phase.name}: ${note(row, now)}`;
  const ref = phase.ref;
  if (row.status === 'running') {
    const pct = percent(row);
    return [pct === null ? 'running' : `running ${pct}%`, 'running', line];
  }
  if (row.status === 'interrupted') {
    const at = fraction(row);
    return [at ? `interrupted ${at}` : 'interrupted', 'interrupted', line];
  }
  if (row.status === 'failed') {
    return ['failed', 'failed', line];
  }
  if (ref && ref.source && ref.source !== sourceHash(phase.body)) {
    return [
      'stale',
      'stale',
      `${phase.name}: stale, the cell changed since its checkpoint; re-running it runs it again · ${note(row, now)}`
    ];
  }
  if (row.status === 'done' && ref && ref.status === 'restored') {
    return ['restored', 'restored', `${phase.name}: ${note({ ...row, status: 'restored' }, now)}`];
  }
  const word = statusWord(row.status);
  return [word, word, line];
}

export class NotebookPhases {
  constructor(readonly panel: NotebookPanel) {
    panel.content.modelContentChanged.connect(this._soon, this);
    panel.context.pathChanged.connect(this._soon, this);
    panel.disposed.connect(() => this.dispose());
    void panel.context.ready.then(() => this._sync());
  }

  get watcher(): StoreWatcher | null {
    return this._watcher;
  }

  /** What the other stores the notebook's cells name say (``%checkpoint dir`` moved the store
   * after they ran), read so far. */
  get otherViews(): INotebookView[] {
    const views: INotebookView[] = [];
    for (const [watcher] of Array.from(this._others.values())) {
      if (watcher.view) {
        views.push(watcher.view);
      }
    }
    return views;
  }

  /** Phase names of the notebook's checkpoint cells, in cell order. */
  get names(): string[] {
    return this._names;
  }

  get changed(): ISignal<this, INotebookView | null> {
    return this._changed;
  }

  dispose(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._unsubscribe?.();
    this._unsubscribe = null;
    this._watcher = null;
    this._follow('', new Set());
    this._disposed = true;
  }

  private _soon(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => {
      this._timer = null;
      this._sync();
    }, DEBOUNCE_MS);
  }

  /** Follow the notebook's store (its path, or the store its outputs name last) and redraw. A
   * cell whose view names another store (``%checkpoint dir`` moved it since) reads that one. */
  private _sync(): void {
    if (this._disposed) {
      return;
    }
    const dirs: string[] = [];
    for (const cell of this.panel.content.widgets) {
      const dir = cellDir(this._phase(cell));
      if (dir) {
        dirs.push(dir);
      }
    }
    const main = dirs.length ? dirs[dirs.length - 1] : '';
    const path = this.panel.context.path;
    const watcher = watcherFor(path, main);
    if (watcher !== this._watcher) {
      this._unsubscribe?.();
      this._watcher = watcher;
      this._unsubscribe = watcher.subscribe(view => {
        this._draw(view);
        this._changed.emit(view);
      });
    }
    this._follow(path, new Set(dirs.filter(dir => dir !== main)));
    this._draw(watcher.view);
  }

  /** Watch the other stores ``dirs`` (capped: a crafted notebook naming many gets a few). */
  private _follow(path: string, dirs: Set<string>): void {
    for (const [dir, [watcher, unsubscribe]] of Array.from(this._others)) {
      if (!dirs.has(dir) || watcher.path !== path) {
        unsubscribe();
        this._others.delete(dir);
      }
    }
    for (const dir of Array.from(dirs)) {
      if (this._others.has(dir)) {
        continue;
      }
      const other = watcherFor(path, dir, true);
      if (other) {
        const unsubscribe = other.subscribe(() => {
          const view = this._watcher?.view ?? null;
          this._draw(view);
          this._changed.emit(view);
        });
        this._others.set(dir, [other, unsubscribe]);
      }
    }
  }

  /** The cell's phase, with the view its outputs had before they were cleared (Clear Outputs
   * keeps no record; the cell's next run, counted by its execution count, forgets it). */
  private _phase(cell: Cell): ICellPhase | null {
    const model = cell.model as CodeCell['model'];
    const ref = cell.model.type === 'code' ? outputRef(cell) : null;
    const count = cell.model.type === 'code' ? model.executionCount : null;
    if (ref) {
      this._seen.set(cell.model, [ref, count]);
      return cellPhase(cell);
    }
    const seen = this._seen.get(cell.model);
    if (seen && count !== null && count !== seen[1]) {
      this._seen.delete(cell.model); // it ran since (a --quiet run leaves no view)
      return cellPhase(cell);
    }
    return cellPhase(cell, seen ? seen[0] : null);
  }

  private _draw(view: INotebookView | null): void {
    const names: string[] = [];
    const now = view ? view.now : Date.now() / 1000;
    const cells = this.panel.content.widgets;
    const phases = cells.map(cell => this._phase(cell));
    const where = new Map<string, number[]>();
    phases.forEach((phase, index) => {
      if (phase) {
        where.set(phase.name, (where.get(phase.name) ?? []).concat(index));
      }
    });
    cells.forEach((cell, index) => {
      const phase = phases[index];
      let badge = cell.node.querySelector<HTMLElement>(':scope .jp-nbresume-badge');
      if (!phase) {
        badge?.remove();
        return;
      }
      const same = where.get(phase.name) ?? [];
      if (same.length > 1) {
        phase.duplicate = cellList(same);
      }
      names.push(phase.name);
      const host = cell.inputArea?.node;
      if (!host) {
        return;
      }
      if (!badge) {
        badge = document.createElement('div');
        badge.className = 'jp-nbresume-badge';
        host.appendChild(badge);
      }
      badge.dataset.phase = phase.name;
      let word: string, status: string, title: string;
      const own = this._others.get(cellDir(phase));
      const cellView = own ? own[0].view : view;
      const error = (own ? own[0] : this._watcher)?.error;
      if (cellView) {
        const rows = Array.isArray(cellView.phases) ? cellView.phases : [];
        const row = rows.find(r => r && r.kind === 'phase' && r.name === phase.name);
        [word, status, title] = badgeState(
          row,
          phase,
          own ? cellView.now : now,
          this.panel.context.path
        );
      } else {
        [word, status, title] = ['…', 'unknown', 'nbresume: reading the checkpoint store'];
      }
      if (error) {
        // the last state read may be long gone (a loop "running 45%" forever): not shown as now
        const known = cellView ? `; last known: ${title}` : '';
        [word, status, title] = [
          '?',
          'unknown',
          `nbresume: could not read the checkpoint store: ${error}${known}`
        ];
      }
      badge.textContent = word;
      badge.dataset.status = status;
      badge.title = title;
      // (a screen reader says what a sighted user reads, never a colour alone)
      badge.setAttribute('role', 'note');
      badge.setAttribute('aria-label', `checkpoint ${phase.name}: ${word === '?' ? 'unknown' : word}`);
    });
    this._names = names;
  }

  private _watcher: StoreWatcher | null = null;
  private _unsubscribe: (() => void) | null = null;
  private _timer: number | null = null;
  private _names: string[] = [];
  private _others = new Map<string, [StoreWatcher, () => void]>(); // dir -> its watcher
  private _seen = new WeakMap<object, [IPhaseRef, number | null]>();
  private _disposed = false;
  private _changed = new Signal<this, INotebookView | null>(this);
}
