(** Addition of natural numbers commutes. *)
Theorem add_commutes : forall n m : nat, n + m = m + n.
Proof.
  intros n m. induction n as [| k IH].
  - simpl. rewrite <- plus_n_O. reflexivity.
  - simpl. rewrite IH. rewrite plus_n_Sm. reflexivity.
Qed.
