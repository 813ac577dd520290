// The console's only script of its own: draws the charts with uPlot. Each chart's numbers come in
// its container's data-chart attribute (escaped by the server, never evaluated), so the page needs
// no inline script; without JavaScript the figure shows the same numbers as text.
(function () {
  'use strict';
  // By what a series means, not by its position: failures are red on every chart.
  var colors = { main: '#1f5fbf', good: '#1e7b34', bad: '#b3261e', warn: '#b07800' };

  function draw(el) {
    if (el.dataset.drawn === '1' || typeof uPlot === 'undefined') return;
    var spec;
    try {
      spec = JSON.parse(el.getAttribute('data-chart'));
    } catch (e) {
      return;
    }
    var width = Math.max(240, el.clientWidth || 600);
    var series = [{ label: 'time' }].concat(
      spec.series.map(function (s, i) {
        return { label: s.label, stroke: colors[s.kind] || colors.main, width: 1.5, points: { show: false } };
      }),
    );
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var opts = {
      width: width,
      height: 180,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{}, { label: spec.unit || '', size: 50 }],
      legend: { live: true },
    };
    el.textContent = '';
    var plot = new uPlot(opts, data, el);
    el.dataset.drawn = '1';
    el.classList.add('drawn');
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(function () {
        var w = Math.max(240, el.clientWidth);
        if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height: 180 });
      }).observe(el);
    }
  }

  function drawAll(root) {
    var els = (root || document).querySelectorAll('[data-chart]');
    for (var i = 0; i < els.length; i++) draw(els[i]);
  }

  if (typeof htmx !== 'undefined') htmx.onLoad(drawAll);
  else if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', function () { drawAll(document); });
  else drawAll(document);
})();
