// A third-party payment widget that fails: demo/broken.html loads it with a query string
// (?v=SECRETQUERY2), which must never reach Exatom, not even through an error's stack.
window.cardWidget = {
  open: function openCardWidget(field) {
    throw new Error('Card widget failed for jane.doe@example.com order 12345678 at https://pay.example.org/widget?token=SECRETQUERY');
  },
};
