;; A module that can trap in every way wasm can, for the runtime tests.
(module
  (import "test" "host_exit" (func $host_exit (param i32)))
  (import "test" "host_abort" (func $host_abort))
  ;; Calls back into the host, which may enter another instance (or this one).
  (import "test" "host_callback" (func $host_callback (param i32)))
  (memory (export "memory") 1 4)
  (table 4 funcref)
  (type $binary (func (param i32 i32) (result i32)))
  (type $unary (func (param i32) (result i32)))
  ;; The same signature as $binary under another type index: call_indirect
  ;; compares signatures, so $subtract is callable as a $binary.
  (type $binary_again (func (param i32 i32) (result i32)))
  (elem (i32.const 0) $add $negate $subtract)
  (func $add (type $binary) local.get 0 local.get 1 i32.add)
  (func $negate (type $unary) i32.const 0 local.get 0 i32.sub)
  (func $subtract (type $binary_again) local.get 0 local.get 1 i32.sub)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load_offset") (param i32) (result i32) local.get 0 i32.load offset=0xfffffff0)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "size") (result i32) memory.size)
  (func (export "unreachable") unreachable)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "trunc") (param f32) (result i32) local.get 0 i32.trunc_f32_s)
  (func (export "call_binary") (param i32) (result i32)
    i32.const 20 i32.const 22 local.get 0 call_indirect (type $binary))
  ;; Each frame stores after the call, so the C compiler cannot turn the
  ;; recursion into a loop.
  (func $recurse (export "recurse") (param i32) (result i32)
    (local i32)
    local.get 0 i32.const 1 i32.add call $recurse local.set 1
    i32.const 0 local.get 0 i32.store
    local.get 1 local.get 0 i32.add)
  (func (export "spin") (param i32) (result i32)
    (loop $again
      local.get 0 i32.const 1 i32.add local.set 0
      br $again)
    local.get 0)
  (func (export "exit") (param i32) local.get 0 call $host_exit)
  (func (export "abort") call $host_abort)
  ;; Stores `value` at 8, lets the host run (it may enter another instance),
  ;; then returns what is at 8 now: this instance's memory, if the way memory
  ;; is addressed survived the host's detour.
  (func (export "store_callback_load") (param i32) (result i32)
    i32.const 8 local.get 0 i32.store
    local.get 0 call $host_callback
    i32.const 8 i32.load)
)
