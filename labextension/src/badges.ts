// A badge on each checkpoint cell (restored / running 45% / interrupted / failed / stale), with
// the phase's one-line note as its hover title; one `NotebookPhases` per open notebook, which
// also tells the sidebar which store and which phase names the notebook has.
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { INotebookView, IPhaseRef, IPhaseRow, PHASE_MIME } from './api';
import { checkpointMagic, fraction, note, percent, sourceHash, statusWord } from './format';
import { StoreWatcher, watcherFor } from './watcher';

const DEBOUNCE_MS = 300;

interface ICellPhase {
  name: string;
  ref: IPhaseRef | null; // the last phase view in the cell's outputs, if any
  body: string;
}

/** What a code cell says of its phase: a ``%%checkpoint`` line, the kernel's view, or both. */
export function cellPhase(cell: Cell): ICellPhase | null {
  if (cell.model.type !== 'code') {
    return null;
  }
  const [isCheckpoint, parsed, body] = checkpointMagic(cell.model.sharedModel.getSource());
  let ref: IPhaseRef | null = null;
  const outputs = (cell as CodeCell).model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const data = outputs.get(i).data[PHASE_MIME] as unknown as IPhaseRef | undefined;
    if (data && typeof data.name === 'string') {
      ref = data;
    }
  }
  if (!isCheckpoint) {
    return null; // the magic line is gone: whatever the outputs say, not a checkpoint cell now
  }
  const name = ref ? ref.name : parsed;
  return name ? { name, ref, body } : null;
}

/** The badge's word and class for a phase row, as this cell shows it. */
export function badgeState(
  row: IPhaseRow | undefined,
  phase: ICellPhase,
  now: number
): [string, string, string] {
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

  /** Follow the notebook's store (its path, or the store its outputs name) and redraw. */
  private _sync(): void {
    if (this._disposed) {
      return;
    }
    let dir = '';
    for (const cell of this.panel.content.widgets) {
      const phase = cellPhase(cell);
      if (phase && phase.ref && phase.ref.dir && typeof phase.ref.dir === 'string') {
        dir = phase.ref.dir;
      }
    }
    const path = this.panel.context.path;
    const watcher = watcherFor(path, dir);
    if (watcher !== this._watcher) {
      this._unsubscribe?.();
      this._watcher = watcher;
      this._unsubscribe = watcher.subscribe(view => {
        this._draw(view);
        this._changed.emit(view);
      });
    } else {
      this._draw(watcher.view);
    }
  }

  private _draw(view: INotebookView | null): void {
    const names: string[] = [];
    const now = view ? view.now : Date.now() / 1000;
    for (const cell of this.panel.content.widgets) {
      const phase = cellPhase(cell);
      let badge = cell.node.querySelector<HTMLElement>(':scope .jp-nbresume-badge');
      if (!phase) {
        badge?.remove();
        continue;
      }
      names.push(phase.name);
      const host = cell.inputArea?.node;
      if (!host) {
        continue;
      }
      if (!badge) {
        badge = document.createElement('div');
        badge.className = 'jp-nbresume-badge';
        host.appendChild(badge);
      }
      badge.dataset.phase = phase.name;
      if (!view) {
        const error = this._watcher?.error;
        badge.textContent = error ? '?' : '…';
        badge.dataset.status = 'unknown';
        badge.title = error
          ? `nbresume: could not read the checkpoint store: ${error}`
          : 'nbresume: reading the checkpoint store';
        continue;
      }
      const rows = Array.isArray(view.phases) ? view.phases : [];
      const row = rows.find(r => r && r.kind === 'phase' && r.name === phase.name);
      const [word, status, title] = badgeState(row, phase, now);
      badge.textContent = word;
      badge.dataset.status = status;
      badge.title = title;
    }
    this._names = names;
  }

  private _watcher: StoreWatcher | null = null;
  private _unsubscribe: (() => void) | null = null;
  private _timer: number | null = null;
  private _names: string[] = [];
  private _disposed = false;
  private _changed = new Signal<this, INotebookView | null>(this);
}
