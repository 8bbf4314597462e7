/* The navigator.getGamepads test double (see tests/support/browser.py). */
(() => {
  const blank = () => Array.from({length: 17}, () => ({pressed: false, touched: false, value: 0}));
  const effects = [];
  const pad = {
    id: "coplay test pad (STANDARD GAMEPAD Vendor: 045e Product: 028e)",
    index: 0, mapping: "standard", connected: false, timestamp: 0,
    buttons: blank(), axes: [0, 0, 0, 0],
    vibrationActuator: {
      type: "dual-rumble", effectTypes: ["dual-rumble"],
      playEffect(type, params) {
        effects.push(Object.assign({type, at: performance.now()}, params));
        return Promise.resolve("complete");
      },
      reset() { effects.push({type: "reset", at: performance.now()}); return Promise.resolve("complete"); },
    },
  };
  const changes = [];
  const api = {
    effects, changes,
    plug(mapping) { pad.mapping = mapping === undefined ? "standard" : mapping; pad.connected = true; },
    unplug() { pad.connected = false; },
    /* pressed: standard button indices held; values: {index: 0..1} analog buttons;
       axes: [lx, ly, rx, ry] in -1..1 */
    set(pressed, axes, values) {
      const buttons = blank();
      for (const i of pressed || []) buttons[i] = {pressed: true, touched: true, value: 1};
      for (const [i, v] of Object.entries(values || {})) buttons[i] = {pressed: v > 0.1, touched: v > 0, value: v};
      pad.buttons = buttons;
      pad.axes = (axes || [0, 0, 0, 0]).slice(0, 4);
      pad.timestamp = performance.now();
      changes.push(performance.timeOrigin + performance.now());
    },
  };
  Object.defineProperty(window, "__pad", {value: api});
  const getGamepads = function () {
    if (!pad.connected) return [null, null, null, null];
    return [Object.assign({}, pad, {buttons: pad.buttons.slice(), axes: pad.axes.slice()}), null, null, null];
  };
  Object.defineProperty(Navigator.prototype, "getGamepads", {value: getGamepads, configurable: true});
})();
