// Records what a reader sees on this page as data attributes of <body>, so that the page checks
// (tests/test_book.py, headless Chromium at several window widths) can assert the reading experience: code cells
// shown without a click, tables wider than the article column, figures without a caption, and every element that
// is wider than the column or sticks out of it. It changes nothing on the page (it only waits until the interactive
// figures have taken their column's width, as the page's own script has them do).
window.addEventListener("load", function () {
  // interactive figures (plotly) take their column's width once the page's layout is final: measure after that
  var graphs = window.Plotly ? Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot")) : [];
  Promise.all(graphs.map(function (g) { return window.Plotly.Plots.resize(g); })).then(measure, measure);
});

function measure() {
  var article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  var width = article.getBoundingClientRect().width;
  // inside a closed <details> an element is not shown, whatever its box says (Chromium lays out hidden content)
  var visible = function (el) {
    return !el.closest("details:not([open])") && el.getClientRects().length > 0 &&
      el.getBoundingClientRect().height > 0;
  };
  var code = Array.prototype.filter.call(document.querySelectorAll(".cell_input"), visible).length;
  var wide = Array.prototype.filter.call(article.querySelectorAll("table"), function (t) {
    return visible(t) && t.getBoundingClientRect().width > width + 1;
  }).length;
  // a table kept inside the column by the stylesheet, whose columns still need a scroll to be read
  var scrolling = Array.prototype.filter.call(article.querySelectorAll("table.readable"), function (t) {
    return visible(t) && t.scrollWidth > t.clientWidth + 1;
  });
  var bare = Array.prototype.filter.call(article.querySelectorAll(".cell_output img"), function (img) {
    var fig = img.closest("figure");
    return !(fig && fig.querySelector("figcaption"));
  }).length;
  document.body.setAttribute("data-visible-code-cells", String(code));
  document.body.setAttribute("data-wide-tables", String(wide));
  document.body.setAttribute("data-scrolling-tables", String(scrolling.length));
  document.body.setAttribute("data-scrolling-table-columns", scrolling.map(function (t) {
    return Array.prototype.map.call(t.querySelectorAll("thead th"), function (th) { return th.textContent; })
      .join("|") + " (" + t.scrollWidth + " of " + t.clientWidth + " px)";
  }).join("; "));
  document.body.setAttribute("data-uncaptioned-figures", String(bare));
  document.body.setAttribute("data-article-width", String(Math.round(width)));
  // each numbered figure's image: its natural and its drawn width (px), from which the page checks work out how
  // large the figure's text is drawn (tests/test_book.py, test_figure_text_is_legible_at_a_laptops_width)
  document.body.setAttribute("data-figures", JSON.stringify(Array.prototype.map.call(
    article.querySelectorAll("figure[id] img"), function (img) {
      return {id: img.closest("figure").id, natural: img.naturalWidth,
              drawn: Math.round(img.getBoundingClientRect().width)};
    })));
  document.body.setAttribute("data-overflow", JSON.stringify(overflow(article)));
}

// Every table, figure, image, output and code listing of the main column measured, with every folded block
// (<details>: dropdowns, hidden code) opened, as a reader may open it. For each element wider than the column
// (its box or its content: scrollWidth) or sticking out of it: what it is, its widths in px, and whether that is
// allowed: a code listing may scroll inside its own box at any width, and on a phone (a column under 600 px) a
// table may scroll inside its own box; nothing else may. The column itself: its content width against its width.
function overflow(article) {
  var closed = Array.prototype.filter.call(article.querySelectorAll("details"), function (d) { return !d.open; });
  closed.forEach(function (d) { d.open = true; });
  // the column's content box: what its padding leaves for the text
  var outer = article.getBoundingClientRect(), style = getComputedStyle(article);
  var left = outer.left + parseFloat(style.paddingLeft), right = outer.right - parseFloat(style.paddingRight);
  var column = {left: left, right: right, width: right - left};
  var phone = column.width < 600;
  var listing = function (el) {
    return el.matches("pre, div.highlight") && !el.closest(".cell_output, .output");
  };
  // an element that scrolls its own content sideways (overflow-x auto or scroll)
  var scroller = function (el) {
    var o = getComputedStyle(el).overflowX;
    return o === "auto" || o === "scroll";
  };
  var describe = function (el) {
    var what = el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ?
      "." + el.className.trim().split(/\s+/).join(".") : "");
    var text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 60);
    var heading = el.closest("section") && el.closest("section").querySelector("h1, h2, h3");
    return {what: what, text: text, section: heading ? heading.textContent.replace(/[#¶]/g, "").trim() : ""};
  };
  var found = [];
  var selector = "table, figure, img, svg, video, iframe, .cell_output, .output, div.highlight, pre, " +
    "div.math, .pst-scrollable-table-container, .sd-dropdown, details, .admonition";
  Array.prototype.forEach.call(article.querySelectorAll(selector), function (el) {
    if (el.getClientRects().length === 0) return;
    var box = el.getBoundingClientRect();
    if (box.height === 0) return;
    var content = Math.max(el.scrollWidth, Math.round(box.width));
    var out = Math.max(0, Math.round(box.right - column.right), Math.round(column.left - box.left));
    if (content <= column.width + 1 && out <= 1) return;
    // inside an element that scrolls (a table's box, a listing): measured as that element
    var parent = el.parentElement && el.parentElement.closest("table, pre, div.highlight");
    if (parent && article.contains(parent) && parent !== el) return;
    // allowed: a code listing, or on a phone a table, that scrolls inside a box of its own that fits the column
    // (itself, or the nearest box around it that scrolls), or that box itself, holding one of them
    var kind = function (e) { return listing(e) || (phone && e.tagName === "TABLE"); };
    var own = null;
    for (var up = el; up && up !== article; up = up.parentElement) {
      if (scroller(up)) {
        var r = up.getBoundingClientRect();
        own = r.left >= column.left - 1 && r.right <= column.right + 1 ? up : null;
        break;
      }
    }
    var allowed = false;
    if (own && kind(el)) {
      allowed = true;
    } else if (own === el) {
      var inner = el.querySelector("table, pre");
      allowed = inner !== null && kind(inner);
    }
    var entry = describe(el);
    entry.width = Math.round(box.width);
    entry.content = content;
    entry.out = out;
    entry.allowed = allowed;
    found.push(entry);
  });
  var result = {column: Math.round(column.width), column_client: article.clientWidth, column_content: article.scrollWidth,
                page: document.documentElement.scrollWidth, window: window.innerWidth, elements: found};
  closed.forEach(function (d) { d.open = false; });
  return result;
}
