// hooks.js: small hooks the Builder's panels share.
import {useEffect, useRef} from 'preact/hooks';

// useOnChange calls fn when key differs from the key of the last render
// that called it, and never on mount. A panel that mirrors saved state in
// its own (editable) state follows the saved value with it: an effect that
// also ran on mount lands after the first paint and would undo whatever
// the user did in between.
export function useOnChange(key, fn) {
  const last = useRef(key);
  useEffect(() => {
    if (last.current === key) return;
    last.current = key;
    fn();
  }, [key]);
}
