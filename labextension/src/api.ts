// The server extension's JSON API (src/nbresume/server/handlers.py), through the server's own
// connection settings: its base URL, token and XSRF cookie, like JupyterLab's own requests.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const PHASE_MIME = 'application/vnd.nbresume.phase+json';

/** What the kernel puts in the phase view's output bundle (src/nbresume/widget.py). */
export interface IPhaseRef {
  name: string;
  dir?: string;
  status?: string;
  source?: string;
}

export interface ILoop {
  desc: string;
  status: string;
  done: number | null;
  total: number | null;
  skipped: number | null;
  rate: number | null;
  eta: number | null;
  elapsed: number | null;
  last_snapshot: number | null;
}

export interface IProgress {
  done: number | null;
  total: number | null;
  skipped: number | null;
  rate: number | null;
  eta: number | null;
  elapsed: number | null;
  last_snapshot: number | null;
  updated: number | null;
  started: number | null;
  resumes?: number | null; // of the run under way or interrupted
  loops: ILoop[];
}

export interface IPhaseRow {
  kind: string;
  name: string;
  notebook: string | null;
  status: string;
  running: boolean;
  resumable: boolean;
  updated: number;
  duration: number | null;
  versions: number;
  size: number;
  last_snapshot: number | null;
  snapshot_size: number | null;
  progress: IProgress | null;
  saved?: number | null;
  resumes?: number | null; // how often its current version's run resumed after its kernel died
  history?: IVersion[]; // its kept versions, #1 current (what %checkpoint history lists)
}

/** One kept version of a phase, as ``%checkpoint history NAME`` lists it (handlers.py). */
export interface IVersion {
  number?: number; // 1 is current; rollback takes this number
  current?: boolean;
  created: number | null; // when its run started, epoch seconds
  duration: number | null; // seconds, over every kernel of the run
  size: number | null;
  reason: string | null; // why it ran: "first run", "input 'lr' changed", ...
  resumes?: number | null;
  rollback?: string | null; // the exact command that makes it current again (null for #1)
}

export interface INotebookView {
  now: number;
  store: string;
  exists: boolean;
  phases: IPhaseRow[];
  running: number;
  size?: number;
}

/** A request to /nbresume/api/ENDPOINT; rejects with the server's one-line reason. */
export async function requestAPI<T>(endpoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'nbresume', 'api', endpoint);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    // NB. tornado doubles the % of a message without arguments ("%%checkpoint list")
    const reason = String((body && (body.message || body.reason)) || response.statusText);
    throw new Error(`${response.status}: ${reason.replace(/%%/g, '%')}`);
  }
  return body as T;
}

export function notebookView(path: string, dir: string): Promise<INotebookView> {
  const query = URLExt.objectToQueryString({ path, dir });
  return requestAPI<INotebookView>('notebook' + query);
}

export function post<T>(endpoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
}
