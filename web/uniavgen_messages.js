// Shows the messages a UniAVGen node returns (what it trimmed, resampled, fell back to, which task it
// ran) on the node itself, in a read-only text box under its inputs. They also go to the server log.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET = "uniavgen_messages";

function showMessages(node, lines) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    widget = ComfyWidgets["STRING"](node, WIDGET, ["STRING", { multiline: true }], app).widget;
    widget.inputEl.readOnly = true;
    widget.inputEl.style.opacity = 0.85;
    widget.serialize = false;            // a display, not an input: never saved into workflows or prompts
  }
  widget.value = lines.join("\n");
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  app.graph.setDirtyCanvas(true, true);
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
