// The n-th Fibonacci number, by definition.
function Fib(n: nat): nat
{
  if n < 2 then n else Fib(n - 1) + Fib(n - 2)
}

// Fib(n) in linear time with two accumulators.
method ComputeFib(n: nat) returns (f: nat)
  ensures f == Fib(n)
