(** A number is at most itself plus anything. *)
Theorem le_add_r : forall n m : nat, n <= n + m.
