// nbresume in JupyterLab 4 and Notebook 7: the phase view in the cell (a MIME renderer), a badge on
// each checkpoint cell, and the "Checkpoints" sidebar, all read from the server's store API.
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { NotebookPhases } from './badges';
import { RANK, rendererFactory } from './renderer';
import { CheckpointsPanel } from './sidebar';

const SHOW = 'nbresume:show-checkpoints';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbresume:plugin',
  description: 'The nbresume phase view, checkpoint badges and the Checkpoints sidebar.',
  autoStart: true,
  requires: [IRenderMimeRegistry, INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    rendermime.addFactory(rendererFactory, RANK);
    // NB. notebooks opened before this plugin ran cloned the registry without the factory
    tracker.forEach(panel => panel.content.rendermime.addFactory(rendererFactory, RANK));

    const phases = new WeakMap<NotebookPanel, NotebookPhases>();
    const sidebar = new CheckpointsPanel(tracker, panel => phases.get(panel));
    const track = (panel: NotebookPanel) => {
      if (!phases.has(panel)) {
        phases.set(panel, new NotebookPhases(panel));
      }
      sidebar.follow();
    };
    tracker.forEach(track);
    tracker.widgetAdded.connect((_, panel) => track(panel));
    // Notebook 7's tree, editor, console and terminal pages have no notebook to show
    const page = PageConfig.getOption('notebookPage');
    if (page && page !== 'notebooks') {
      return;
    }
    // (Notebook 7 lists the left area's panels in View > Left Sidebar by their caption)
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, sidebar.id); // open after a reload if it was open before
    // a way in from the keyboard: the command palette, then Tab through the rows' buttons
    app.commands.addCommand(SHOW, {
      label: 'Show Checkpoints',
      caption: "The open notebook's checkpoints: status, progress, size, history",
      execute: () => app.shell.activateById(sidebar.id)
    });
    palette?.addItem({ command: SHOW, category: 'Checkpoints' });
  }
};

export default plugin;
