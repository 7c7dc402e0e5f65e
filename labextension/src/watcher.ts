// One poller per (notebook, store): the cell views, the badges and the sidebar of a notebook share
// it, so an open notebook costs one request a second while a loop runs, whatever its cell count.
import { INotebookView, notebookView } from './api';

export const FAST_MS = 1000; // while a phase runs, or right after a view asked
export const SLOW_MS = 4000; // nothing runs: a kernel death shows within FAST_MS anyway
export const HIDDEN_MS = 15000; // the browser tab is hidden
export const ERROR_MS = 15000; // the store cannot be read (outside the root, say): ask seldom

export type Listener = (view: INotebookView | null, error: string | null) => void;

export class StoreWatcher {
  constructor(readonly path: string, readonly dir: string) {}

  get view(): INotebookView | null {
    return this._view;
  }

  get error(): string | null {
    return this._error;
  }

  subscribe(listener: Listener): () => void {
    this._listeners.add(listener);
    if (this._view || this._error) {
      listener(this._view, this._error);
    }
    this.refresh();
    return () => {
      this._listeners.delete(listener);
      if (this._listeners.size === 0) {
        this._stop();
      }
    };
  }

  /** Ask now (a new output, an action), then poll fast for a while. */
  refresh(): void {
    this._fastUntil = Date.now() + 5 * FAST_MS;
    if (this._inflight) {
      this._again = true;
      return;
    }
    this._schedule(0);
  }

  private _schedule(delay: number): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => {
      this._timer = null;
      void this._poll();
    }, delay);
  }

  private async _poll(): Promise<void> {
    if (this._listeners.size === 0) {
      return;
    }
    this._inflight = true;
    try {
      this._view = await notebookView(this.path, this.dir);
      this._error = null;
    } catch (reason) {
      this._error = reason instanceof Error ? reason.message : String(reason);
    } finally {
      this._inflight = false;
    }
    for (const listener of Array.from(this._listeners)) {
      try {
        listener(this._view, this._error);
      } catch (reason) {
        console.warn('nbresume: a view failed to update', reason);
      }
    }
    if (this._listeners.size === 0) {
      return;
    }
    const running = !!this._view && this._view.running > 0;
    let delay = running || Date.now() < this._fastUntil || this._again ? FAST_MS : SLOW_MS;
    if (document.hidden || this._error) {
      // NB. each failed request is a console line of the browser's own: no flood of them
      delay = Math.max(delay, this._error ? ERROR_MS : HIDDEN_MS);
    }
    this._schedule(this._again ? 0 : delay);
    this._again = false;
  }

  private _stop(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    watchers.delete(key(this.path, this.dir));
  }

  private _listeners = new Set<Listener>();
  private _view: INotebookView | null = null;
  private _error: string | null = null;
  private _timer: number | null = null;
  private _inflight = false;
  private _again = false;
  private _fastUntil = 0;
}

const watchers = new Map<string, StoreWatcher>();

function key(path: string, dir: string): string {
  return JSON.stringify([path, dir]);
}

/** Distinct stores one notebook's cell views may watch: a crafted notebook naming a thousand
 * store directories in its outputs must not poll the server a thousand times a second. */
export const MAX_STORES = 8;

/** The shared watcher of a notebook's store; ``dir``: the kernel's store directory, if known.
 * ``capped``: null rather than a new watcher once the notebook has `MAX_STORES` of them. */
export function watcherFor(path: string, dir: string, capped: true): StoreWatcher | null;
export function watcherFor(path: string, dir: string, capped?: false): StoreWatcher;
export function watcherFor(path: string, dir: string, capped = false): StoreWatcher | null {
  const k = key(path, dir);
  let watcher = watchers.get(k);
  if (!watcher) {
    if (capped && Array.from(watchers.values()).filter(w => w.path === path).length >= MAX_STORES) {
      return null;
    }
    watcher = new StoreWatcher(path, dir);
    watchers.set(k, watcher);
  }
  return watcher;
}
