// Small DOM helpers: element building, the live region, the alert.

export const $ = (id) => document.getElementById(id);

/** `el('p', {class: 'x'}, 'text', child)`: attributes, then text or nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Says `text` politely to screen readers, and shows it. */
export function announce(text) {
  const region = $('announce');
  // Clearing first makes a repeated message be read again.
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

/** Shows a failure as an alert (read at once); `null` hides it. */
export function showProblem(text) {
  const box = $('problem');
  box.textContent = text || '';
  box.hidden = !text;
}
