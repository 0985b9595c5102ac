(** Doubling by recursion equals adding a number to itself. *)
Fixpoint double (n : nat) : nat :=
  match n with
  | O => O
  | S k => S (S (double k))
  end.

Theorem double_is_sum : forall n : nat, double n = n + n.
Proof.
  intros n. simpl. reflexivity.
Qed.
