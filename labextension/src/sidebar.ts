// The "Checkpoints" sidebar: the phases of the current notebook's store, live, with clear and
// mark pending|done (the dashboard's API, behind the server's auth and XSRF).
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { INotebookView, IPhaseRow, IVersion, post } from './api';
import { NotebookPhases } from './badges';
import {
  age,
  duration,
  note,
  num,
  otherNotebook,
  plural,
  resumedText,
  size,
  statusWord,
  str,
  when
} from './format';
import { bar, el } from './renderer';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><path class="jp-icon3" ' +
  'fill="#616161" d="M6 2h12v20l-6-4-6 4zM8 4v14.2l4-2.7 4 2.7V4z"/></svg>';

export const checkpointIcon = new LabIcon({ name: 'nbresume:checkpoints', svgstr: ICON_SVG });

export class CheckpointsPanel extends Widget {
  constructor(
    private _tracker: INotebookTracker,
    private _phasesOf: (panel: NotebookPanel) => NotebookPhases | undefined
  ) {
    super();
    this.id = 'jp-nbresume-checkpoints';
    this.title.icon = checkpointIcon;
    this.title.caption = 'Checkpoints';
    this.addClass('jp-nbresume-sidebar');
    this.node.tabIndex = -1; // focusable from the "Show Checkpoints" command
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Checkpoints');
    this._head = el('div', 'jp-nbresume-sidebar-head');
    this._body = el('div', 'jp-nbresume-sidebar-body');
    this._message = el('div', 'jp-nbresume-sidebar-message');
    this.node.append(this._head, this._message, this._body);
    _tracker.currentChanged.connect(() => this._follow(), this);
    this._follow();
  }

  /** Start following the current notebook's phases (again): its panel may be new. */
  follow(): void {
    this._follow();
  }

  private _follow(): void {
    const panel = this._tracker.currentWidget;
    const phases = panel ? this._phasesOf(panel) : undefined;
    if (phases === this._phases) {
      return;
    }
    this._phases?.changed.disconnect(this._onChange, this);
    this._phases = phases ?? null;
    if (!phases) {
      this._head.replaceChildren(el('h2', '', 'Checkpoints'));
      this._body.replaceChildren();
      this._showMessage('Open a notebook to see its checkpoints.');
      return;
    }
    phases.changed.connect(this._onChange, this);
    this._onChange(phases, phases.watcher?.view ?? null);
  }

  private _onChange(phases: NotebookPhases, view: INotebookView | null): void {
    if (phases !== this._phases || !this.isVisible) {
      this._pending = view;
      return;
    }
    this._render(view);
  }

  /** Activated (the "Show Checkpoints" command, a click on its tab): the keyboard focus comes
   * here, once whatever closed to get here (the command palette) has given its focus back. */
  protected onActivateRequest(): void {
    requestAnimationFrame(() => {
      if (this.isVisible && !this.node.contains(document.activeElement)) {
        this.node.focus();
      }
    });
  }

  protected onAfterShow(): void {
    this._follow();
    if (this._phases) {
      this._render(this._phases.watcher?.view ?? this._pending);
    }
  }

  private _render(view: INotebookView | null): void {
    const phases = this._phases;
    if (!phases) {
      return;
    }
    const title = el('h2', '', 'Checkpoints');
    const where = el('div', 'jp-nbresume-sidebar-store', phases.panel.context.path);
    this._head.replaceChildren(title, where);
    const error = phases.watcher?.error;
    if (!view) {
      this._showMessage(error ? `Could not read the checkpoints: ${error}` : 'Reading…');
      return;
    }
    where.textContent = `${view.store} · ${size(view.size ?? null)}`;
    where.title = `the checkpoint store of ${phases.panel.context.path}`;
    this._showMessage(error ? `Could not refresh: ${error}` : '');
    const mine = new Set(phases.names);
    const rows = (Array.isArray(view.phases) ? view.phases : []).filter(
      r => r && r.kind === 'phase' && typeof r.name === 'string'
    );
    const ours = rows.filter(r => mine.has(r.name));
    const others = rows.filter(r => !mine.has(r.name));
    ours.sort((a, b) => phases.names.indexOf(a.name) - phases.names.indexOf(b.name));
    const list = el('ul', 'jp-nbresume-rows');
    for (const row of ours) {
      list.appendChild(this._row(view, row, false));
    }
    // the notebook's phases saved in a store it used before (``%checkpoint dir`` moved it)
    const shown = new Set(ours.map(r => r.name));
    for (const other of phases.otherViews) {
      for (const row of Array.isArray(other.phases) ? other.phases : []) {
        if (row && row.kind === 'phase' && mine.has(row.name) && !shown.has(row.name)) {
          shown.add(row.name);
          const item = this._row(other, row, false);
          item.classList.add('jp-nbresume-elsewhere');
          item.appendChild(el('div', 'jp-nbresume-row-meta', `in ${other.store}`));
          list.appendChild(item);
        }
      }
    }
    for (const row of others) {
      list.appendChild(this._row(view, row, true));
    }
    if (!rows.length && !list.children.length) {
      this._showMessage(
        view.exists
          ? 'No checkpoints in this store yet.'
          : 'No checkpoints yet: run a %%checkpoint cell.'
      );
    }
    // the rows are redrawn at each poll: a focused button (keyboard users) stays focused
    const focused = document.activeElement;
    const refocus =
      focused instanceof HTMLButtonElement && this._body.contains(focused)
        ? [focused.closest<HTMLElement>('.jp-nbresume-row')?.dataset.name, focused.className]
        : null;
    this._body.replaceChildren(list);
    if (refocus) {
      for (const button of Array.from(list.querySelectorAll<HTMLButtonElement>('button'))) {
        const row = button.closest<HTMLElement>('.jp-nbresume-row');
        if (row?.dataset.name === refocus[0] && button.className === refocus[1]) {
          button.focus();
          break;
        }
      }
    }
  }

  private _row(view: INotebookView, row: IPhaseRow, other: boolean): HTMLElement {
    const status = statusWord(row.status);
    const item = el('li', `jp-nbresume-row jp-nbresume-status-${status}`);
    item.dataset.name = row.name;
    item.dataset.status = status;
    if (other) {
      item.classList.add('jp-nbresume-other');
    }
    const head = el('div', 'jp-nbresume-row-head');
    const name = el('span', 'jp-nbresume-cell-name', row.name);
    name.title = row.name; // (a long name is cut with an ellipsis)
    head.append(
      name,
      el('span', `jp-nbresume-pill jp-nbresume-status-${status}`, status)
    );
    item.appendChild(head);
    const p = row.progress;
    if (p && num(p.done) !== null) {
      item.appendChild(bar(p.done, p.total, status));
    }
    const line = note(row, view.now);
    const text = el('div', 'jp-nbresume-row-note', line);
    text.title = line;
    item.appendChild(text);
    const started = row.running && p ? num(p.started) : null;
    const meta: string[] = [];
    if (status !== 'done' && status !== 'restored') {
      // (a done phase's note says all of this already)
      meta.push(
        size(row.size),
        (started ? 'started ' : 'last run ') + age(started || row.updated, view.now),
        plural(row.versions, 'saved version')
      );
    }
    if (other) {
      meta.push('not in this notebook');
    } else {
      const from = otherNotebook(row, this._phases?.panel.context.path ?? null);
      if (from) {
        meta.push(`last run from ${from}`); // (a notebook sharing the store, and the NAME)
      }
    }
    if (meta.length) {
      item.appendChild(el('div', 'jp-nbresume-row-meta', meta.join(' · ')));
    }

    const actions = el('div', 'jp-nbresume-row-actions');
    const clear = this._button('Clear', 'clear', row.running, () => this._clear(view, row));
    clear.title = 'delete its cached variables, outputs, history and snapshots';
    const pending = this._button('Pending', 'pending', row.running, () =>
      this._mark(view, row, 'pending')
    );
    pending.title = 'mark pending: the next run of the cell runs it again; its history stays';
    const done = this._button('Done', 'done', row.running || row.versions === 0, () =>
      this._mark(view, row, 'done')
    );
    done.title = 'mark done: accept the current saved version';
    const history = this._button('History', 'history', false, () => {
      // (rows are redrawn every poll: which histories are open outlives them)
      details.hidden = !details.hidden;
      history.setAttribute('aria-expanded', String(!details.hidden));
      if (details.hidden) {
        this._open.delete(row.name);
      } else {
        this._open.add(row.name);
      }
    });
    actions.append(clear, pending, done, history);
    item.appendChild(actions);
    const details = this._history(row);
    details.hidden = !this._open.has(row.name);
    history.setAttribute('aria-expanded', String(!details.hidden));
    item.appendChild(details);
    return item;
  }

  /** The kept versions (#1 current): when, how long, why it ran, and the rollback command. */
  private _history(row: IPhaseRow): HTMLElement {
    const box = el('div', 'jp-nbresume-row-history');
    const versions: IVersion[] = Array.isArray(row.history)
      ? row.history.filter(v => v && typeof v === 'object')
      : [];
    if (versions.length) {
      const list = el('ol', 'jp-nbresume-versions');
      versions.forEach((version, index) => {
        const number = num(version.number) ?? index + 1;
        const item = el('li', 'jp-nbresume-version');
        item.dataset.number = String(number);
        const head = el('div', 'jp-nbresume-version-head');
        head.append(
          el('span', 'jp-nbresume-version-number', `#${number}`),
          el('span', 'jp-nbresume-version-when', when(version.created)),
          el('span', '', 'ran ' + duration(version.duration) + resumedText(version)),
          el('span', '', size(version.size))
        );
        item.appendChild(head);
        const reason = str(version.reason);
        if (reason) {
          const why = el('div', 'jp-nbresume-version-reason', reason);
          why.title = reason;
          item.appendChild(why);
        }
        const current = typeof version.current === 'boolean' ? version.current : number === 1;
        // the server's command quotes a name a shell-like split would cut; else ours
        const rollback = str(version.rollback) || `%checkpoint rollback ${row.name} ${number}`;
        item.appendChild(
          current
            ? el('div', 'jp-nbresume-version-current', 'current')
            : el('code', 'jp-nbresume-rollback', rollback)
        );
        list.appendChild(item);
      });
      box.appendChild(list);
    } else {
      box.appendChild(
        el(
          'div',
          'jp-nbresume-history-none',
          num(row.versions)
            ? `${plural(row.versions, 'saved version')}; ` +
                `%checkpoint history ${row.name} lists them`
            : 'no completed version yet'
        )
      );
    }
    box.appendChild(
      el(
        'div',
        'jp-nbresume-history-help',
        `In the notebook: %checkpoint rollback ${row.name} N makes version N current; ` +
          `%checkpoint log ${row.name} shows its events.`
      )
    );
    return box;
  }

  private _button(
    label: string,
    action: string,
    disabled: boolean,
    onClick: () => void
  ): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `jp-Button jp-nbresume-action jp-nbresume-action-${action}`;
    button.textContent = label;
    button.disabled = disabled;
    button.addEventListener('click', onClick);
    return button;
  }

  private async _clear(view: INotebookView, row: IPhaseRow): Promise<void> {
    const answer = await showDialog({
      title: `Clear checkpoint ${row.name}?`,
      body:
        'Its cached variables, outputs, history and snapshots are deleted; ' +
        'the cell runs from the start next time.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Clear' })]
    });
    if (!answer.button.accept) {
      return;
    }
    await this._act('clear', { store: view.store, name: row.name, kind: 'phase' });
  }

  private async _mark(view: INotebookView, row: IPhaseRow, mark: string): Promise<void> {
    await this._act('mark', { store: view.store, name: row.name, mark });
  }

  private async _act(endpoint: string, body: Record<string, string>): Promise<void> {
    try {
      await post(endpoint, body);
      this._showMessage('');
    } catch (reason) {
      this._showMessage(`Could not ${endpoint} ${body.name}: ${(reason as Error).message}`);
    }
    this._phases?.watcher?.refresh();
  }

  private _showMessage(text: string): void {
    this._message.textContent = text;
    this._message.hidden = !text;
  }

  private _head: HTMLElement;
  private _body: HTMLElement;
  private _message: HTMLElement;
  private _phases: NotebookPhases | null = null;
  private _pending: INotebookView | null = null;
  private _open = new Set<string>(); // phases whose history is shown
}
