// Small DOM helpers: elements built from text nodes (never from HTML strings, so a prompt or a
// daemon message cannot inject markup).

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

export function formatSeconds(seconds) {
  return `${Number(seconds).toFixed(seconds < 10 ? 2 : 1)} s`;
}
