// ui.jsx: what the pages of the workspace, the accounts app and the admin
// console share: the message box, error text, the form reader, the top
// bar's slots and the title.
import {render} from 'preact';
import {createPortal} from 'preact/compat';

// Note is a message box: kind '', 'error', 'ok' or 'warn'.
export function Note({kind = '', children, ...rest}) {
  return <div class={`note ${kind}`.trim()} role={kind === 'error' ? 'alert' : 'status'} {...rest}>{children}</div>;
}

// ErrorNote shows an error (an APIError's message is the server's).
export const ErrorNote = ({error, children}) => <Note kind="error">{error?.message || String(error)}{children}</Note>;

// formValues returns a submitted form's fields by name (the last value of
// a repeated name; formAll gets them all).
export const formValues = (e) => Object.fromEntries(new FormData(e.currentTarget));
export const formAll = (e, name) => new FormData(e.currentTarget).getAll(name);

// Slot renders children into an element of the page's static header
// (#nav, #who): the page draws the bar, the app fills it.
export function Slot({id, children}) {
  const el = document.getElementById(id);
  return el ? createPortal(children, el) : null;
}

export function setTitle(title) {
  document.title = `Meridian · ${title}`;
}

// mount renders app into the page's #main.
export function mount(app) {
  const main = document.getElementById('main');
  main.replaceChildren();
  render(app, main);
}
