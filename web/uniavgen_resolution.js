// Reference Image and Video Encode take the picture size from `resolution`; their `short_side` value is used only
// when resolution is "short side". Shown beside "official (short side 736)" it read as a second, conflicting size,
// so it is hidden unless that mode is chosen. The value stays in the node (saved and sent as before).
import { app } from "../../scripts/app.js";

const NODES = new Set(["UniAVGenReferenceImage", "UniAVGenVideoEncode"]);
const widget = (node, name) => node.widgets?.find((w) => w.name === name);

function showShortSide(node, { resize }) {
  const mode = widget(node, "resolution");
  const side = widget(node, "short_side");
  if (!mode || !side) return;
  const hide = mode.value !== "short side";
  if (side.hidden === hide) return;
  side.hidden = hide;
  const need = node.computeSize();
  if (resize || need[1] > node.size[1]) node.setSize([node.size[0], need[1]]);
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "UniAVGen.ResolutionWidgets",
  nodeCreated(node) {
    if (!NODES.has(node.comfyClass)) return;
    const mode = widget(node, "resolution");
    if (!mode) return;
    const callback = mode.callback;
    mode.callback = function () {
      const result = callback?.apply(this, arguments);
      showShortSide(node, { resize: false });
      return result;
    };
    showShortSide(node, { resize: true });      // a new node: its size without the hidden row
  },
  loadedGraphNode(node) {
    // a saved node keeps its saved size (the shipped workflows leave no room for a hidden short_side)
    if (NODES.has(node.comfyClass)) showShortSide(node, { resize: false });
  },
});
