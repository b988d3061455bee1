// Shows the messages a UniAVGen node returns (what it trimmed, resampled, fell back to, which task it ran) on the
// node itself, in a read-only box under its inputs, after it runs. They also go to the server log.
//
// The box is a plain DOM element in a DOM widget (node.addDOMWidget, public in every frontend from 1.27 to 1.58):
// its text is MESSAGE_FONT canvas pixels (12 px on screen at the 0.6 zoom the templates open at, at the least),
// it wraps, and the node grows until every line shows: nothing is cut off, nothing needs scrolling.
import { app } from "../../scripts/app.js";

const WIDGET = "uniavgen_messages";
const MESSAGE_FONT = 20;
const LINE = Math.round(MESSAGE_FONT * 1.3);
const PAD = 6;                 // inside the box
const MARGIN = 10;             // the frontend's margin around a DOM widget's element (all four sides)
const FONT = `${MESSAGE_FONT}px sans-serif`;

let measurer;
function textWidth(text) {
  measurer ??= document.createElement("canvas").getContext("2d");
  measurer.font = FONT;
  return measurer.measureText(text).width;
}

// How many lines `text` takes in a box `width` wide, wrapped at spaces (and inside words longer than a line).
function lineCount(text, width) {
  let count = 0;
  for (const paragraph of text.split("\n")) {
    let line = "";
    count += 1;
    for (const word of paragraph.split(" ")) {
      const next = line ? `${line} ${word}` : word;
      if (textWidth(next) <= width) {
        line = next;
        continue;
      }
      if (line) count += 1;
      line = word;
      while (textWidth(line) > width && line.length > 1) {
        let fit = line.length - 1;
        while (fit > 1 && textWidth(line.slice(0, fit)) > width) fit -= 1;
        line = line.slice(fit);
        count += 1;
      }
    }
  }
  return count;
}

// The widget's height: the box with its text, and the margin the frontend keeps above and below it.
function widgetHeight(widget, node) {
  const inner = Math.max(40, node.size[0] - 2 * MARGIN - 2 * PAD);
  return lineCount(widget.element.textContent, inner) * LINE + 2 * PAD + 2 + 2 * MARGIN;
}

function messageWidget(node) {
  const found = node.widgets?.find((w) => w.name === WIDGET);
  if (found) return found;
  const box = document.createElement("div");
  box.className = "uniavgen-messages";
  Object.assign(box.style, {
    font: FONT, lineHeight: `${LINE}px`, whiteSpace: "pre-wrap", overflowWrap: "anywhere", overflow: "hidden",
    padding: `${PAD}px`, boxSizing: "border-box", borderRadius: "6px", userSelect: "text",
    color: "var(--input-text, #ddd)", background: "var(--comfy-input-bg, #222)", opacity: "0.9",
  });
  const widget = node.addDOMWidget(WIDGET, "uniavgen_messages", box, {
    serialize: false,            // a display, not an input: never saved into workflows or prompts
    getValue: () => box.textContent,
    setValue: (value) => { box.textContent = value ?? ""; },
    getMinHeight: () => widgetHeight(widget, node),
    getMaxHeight: () => widgetHeight(widget, node),
  });
  widget.serialize = false;
  return widget;
}

// Once the frontend has laid the node out (it sets widget.computedHeight): if it gave the box less than its text
// needs, grow the node by the difference, and look again.
function fitBox(node, widget, tries) {
  requestAnimationFrame(() => {
    const have = widget.computedHeight;
    const short = have === undefined ? 0 : widgetHeight(widget, node) - have;
    if (short > 1) {
      node.setSize([node.size[0], node.size[1] + short]);
      node.setDirtyCanvas(true, true);
    }
    if (tries > 0 && (have === undefined || short > 1)) fitBox(node, widget, tries - 1);
  });
}

function showMessages(node, lines) {
  const widget = messageWidget(node);
  widget.element.textContent = lines.join("\n");
  const need = node.computeSize();
  node.setSize([node.size[0], Math.max(node.size[1], need[1])]);
  node.setDirtyCanvas(true, true);
  fitBox(node, widget, 10);
}

app.registerExtension({
  name: "UniAVGen.NodeMessages",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name.startsWith("UniAVGen")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      if (Array.isArray(output?.text) && output.text.length) showMessages(this, output.text);
    };
  },
});
