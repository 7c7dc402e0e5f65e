// The phase view in the cell: the MIME renderer of application/vnd.nbresume.phase+json. It shows
// the phase as the store has it now (through the server), never as the kernel last said, so a
// killed kernel, a reload or a reopened notebook all show the truth.
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { INotebookView, IPhaseRef, IPhaseRow, PHASE_MIME } from './api';
import { count, duration, fraction, note, num, otherNotebook, statusWord, str } from './format';
import { MAX_STORES, watcherFor } from './watcher';

export const RANK = -20; // before the ipywidgets view (-10) of the same bundle

/** The notebook path a renderer's resolver knows (JupyterLab's UrlResolver has one). */
export function resolverPath(resolver: IRenderMime.IResolver | null | undefined): string | null {
  const path = resolver && (resolver as any).path;
  return typeof path === 'string' ? path : null;
}

export function el(tag: string, className = '', text = ''): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export function bar(
  done: number | null,
  total: number | null,
  status: string
): HTMLElement {
  const node = el('div', `jp-nbresume-bar jp-nbresume-status-${statusWord(status)}`);
  const n = Math.max(0, num(done) ?? 0);
  const of = num(total);
  node.setAttribute('role', 'progressbar');
  node.setAttribute('aria-valuemin', '0');
  if (of !== null) {
    node.setAttribute('aria-valuemax', String(of));
  }
  node.setAttribute('aria-valuenow', String(n));
  const fill = el('div', 'jp-nbresume-bar-fill');
  const part = of && of > 0 ? Math.min(1, n / of) : 1;
  fill.style.width = (part * 100).toFixed(1) + '%';
  node.appendChild(fill);
  return node;
}

export class PhaseRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private _options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('jp-nbresume-cell');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const ref = model.data[PHASE_MIME] as unknown as IPhaseRef;
    this._fallback = String(model.data['text/plain'] ?? '');
    const path = resolverPath(this._options.resolver);
    if (!ref || typeof ref.name !== 'string' || path === null) {
      this._showFallback('');
      return;
    }
    this._ref = ref;
    this.node.dataset.phase = ref.name;
    if (this._unsubscribe) {
      this._unsubscribe();
    }
    const watcher = watcherFor(path, typeof ref.dir === 'string' ? ref.dir : '', true);
    if (!watcher) {
      this._unsubscribe = null;
      this._showFallback(`the notebook names more than ${MAX_STORES} checkpoint stores`);
      return;
    }
    this._unsubscribe = watcher.subscribe((view, error) => this._update(view, error));
    if (!watcher.view) {
      this._showFallback('');
    }
  }

  dispose(): void {
    if (this._unsubscribe) {
      this._unsubscribe();
      this._unsubscribe = null;
    }
    super.dispose();
  }

  private _update(view: INotebookView | null, error: string | null): void {
    const ref = this._ref;
    if (!ref || this.isDisposed) {
      return;
    }
    if (!view) {
      this._showFallback(error || '');
      return;
    }
    this._error = error;
    const row = (Array.isArray(view.phases) ? view.phases : []).find(
      r => r && r.kind === 'phase' && r.name === ref.name
    );
    if (!row) {
      this._render(ref.name, 'gone', `no longer in ${view.store} (cleared): re-run the cell`, null);
      return;
    }
    // a hit in this kernel restored the phase's saved version: the store says done (or restored)
    const restored = ref.status === 'restored' && (row.status === 'done' || row.status === 'restored');
    const shown: IPhaseRow = restored ? { ...row, status: 'restored' } : row;
    const other = otherNotebook(row, resolverPath(this._options.resolver));
    const line = note(shown, view.now) + (other ? ` · last run from ${other}` : '');
    this._render(ref.name, statusWord(shown.status), line, row);
  }

  private _render(name: string, status: string, line: string, row: IPhaseRow | null): void {
    const key = JSON.stringify([name, status, line, row && row.progress, this._error]);
    if (key === this._shown) {
      return;
    }
    this._shown = key;
    this.node.dataset.status = status;
    const header = el('div', 'jp-nbresume-cell-header');
    const title = el('span', 'jp-nbresume-cell-name', name);
    title.title = name; // (a long name is cut with an ellipsis)
    header.appendChild(title);
    header.appendChild(el('span', `jp-nbresume-pill jp-nbresume-status-${status}`, status));
    header.appendChild(el('span', 'jp-nbresume-cell-note', line));
    header.title = line;
    const children: HTMLElement[] = [header];
    const loops = row && row.progress && Array.isArray(row.progress.loops) ? row.progress.loops : [];
    if (row && loops.length > 0 && status !== 'restored' && status !== 'done') {
      for (const loop of loops.slice(0, 4)) {
        // a loop stopped with its phase: the phase's status (a dead kernel's record says
        // "running", a restart's may say anything); a finished loop stays done
        const state = row.running
          ? statusWord(loop.status || status)
          : loop.status === 'done'
            ? 'done'
            : status;
        const line = el('div', 'jp-nbresume-loop');
        const desc = el('span', 'jp-nbresume-loop-desc', str(loop.desc) || 'items');
        desc.title = desc.textContent || '';
        line.appendChild(desc);
        line.appendChild(bar(loop.done, loop.total, state));
        const parts = [
          count(num(loop.done) ?? 0) + '/' + (num(loop.total) === null ? '?' : count(loop.total))
        ];
        if (num(loop.skipped)) {
          parts.push('resumed ' + count(loop.skipped));
        }
        const rate = num(loop.rate);
        if (state === 'running' && rate) {
          parts.push(rate.toPrecision(3) + ' it/s');
        }
        if (num(loop.elapsed) !== null) {
          parts.push(duration(loop.elapsed));
        }
        line.appendChild(el('span', 'jp-nbresume-loop-stats', parts.join(' · ')));
        children.push(line);
      }
    } else if (row && status === 'running' && fraction(row) === null) {
      children.push(el('div', 'jp-nbresume-loop', 'running, no loop yet'));
    }
    if (this._error) {
      // what the store said last, and that it may be out of date: never shown as now
      const stale = el(
        'div',
        'jp-nbresume-cell-error',
        `could not refresh (${this._error}); this is the last state read`
      );
      stale.setAttribute('role', 'status');
      children.push(stale);
      this.node.dataset.error = 'true';
    } else {
      delete this.node.dataset.error;
    }
    this.node.replaceChildren(...children);
  }

  private _showFallback(error: string): void {
    const pre = el('pre', 'jp-nbresume-fallback', this._fallback);
    if (error) {
      pre.title = `nbresume: the store could not be read (${error}); this is the kernel's last word`;
    }
    this._shown = '';
    this.node.dataset.status = 'unknown';
    this.node.replaceChildren(pre);
  }

  private _ref: IPhaseRef | null = null;
  private _error: string | null = null;
  private _fallback = '';
  private _shown = '';
  private _unsubscribe: (() => void) | null = null;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [PHASE_MIME],
  defaultRank: RANK,
  createRenderer: options => new PhaseRenderer(options)
};
