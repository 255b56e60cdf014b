(function () {
  "use strict";
  var video = document.getElementById("player");
  var total = parseFloat(document.getElementById("timeline").dataset.seconds);
  var playhead = document.getElementById("playhead");
  var shots = Array.prototype.slice.call(document.querySelectorAll(".strip .shot"));
  var ticks = Array.prototype.slice.call(document.querySelectorAll(".shot-tick"));
  var now = document.getElementById("now-playing");
  var starts = shots.map(function (s) { return parseFloat(s.dataset.start); });
  var current = -1;

  function seek(seconds) {
    video.currentTime = seconds;  // the shot's first frame: frames x 1001 / 30000, written by the build
    show(seconds);
  }
  document.addEventListener("click", function (e) {
    var el = e.target.closest(".seek");
    if (!el) { return; }
    e.preventDefault();
    seek(parseFloat(el.dataset.start));
  });

  function shotAt(t) {
    var lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {  // the last shot starting at or before t
      var mid = (lo + hi) >> 1;
      // a media clock keeps whole microseconds: a shot starts within half a millisecond of its frame's time
      if (starts[mid] <= t + 5e-4) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function show(t) {
    playhead.style.left = (100 * Math.min(t, total) / total) + "%";
    var i = shotAt(t);
    if (i === current) { return; }
    if (current >= 0) { shots[current].classList.remove("current"); ticks[current].classList.remove("current"); }
    current = i;
    if (i < 0) { now.textContent = "\u2014"; return; }
    var s = shots[i];
    s.classList.add("current");
    ticks[i].classList.add("current");
    var strip = s.parentNode;
    strip.scrollLeft = s.offsetLeft - strip.offsetLeft - strip.clientWidth / 2 + s.clientWidth / 2;
    now.innerHTML = "";
    var b = document.createElement("b");
    b.textContent = "shot " + (i + 1) + " of " + shots.length;
    now.appendChild(b);
    now.appendChild(document.createElement("br"));
    now.appendChild(document.createTextNode(s.dataset.tc + ", segment " + s.dataset.segment +
      (s.dataset.record ? ", record " + s.dataset.record : "")));
    if (s.dataset.people) {
      now.appendChild(document.createElement("br"));
      now.appendChild(document.createTextNode("by " + s.dataset.people));
    }
    var img = document.createElement("img");
    img.src = s.querySelector("img").getAttribute("src");
    img.alt = "";
    now.appendChild(img);
  }

  function tick() {
    show(video.currentTime);
    if (!video.paused && !video.ended) { window.requestAnimationFrame(tick); }
  }
  video.addEventListener("play", function () { window.requestAnimationFrame(tick); });
  video.addEventListener("timeupdate", function () { show(video.currentTime); });
  video.addEventListener("seeked", function () { show(video.currentTime); });
  show(0);
})();
