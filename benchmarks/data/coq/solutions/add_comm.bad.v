(** Addition of natural numbers commutes. *)
Theorem add_commutes : forall n m : nat, n + m = m + n.
Proof.
  intros n m. induction n as [| k IH]; simpl; reflexivity.
Qed.
