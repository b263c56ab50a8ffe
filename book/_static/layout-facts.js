// Records what a reader sees on this page as data attributes of <body>, so that the page checks
// (tests/test_book.py, headless Chromium) can assert the reading experience: code cells shown without a click,
// tables wider than the article column, figures without a caption. It changes nothing on the page.
window.addEventListener("load", function () {
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
});
